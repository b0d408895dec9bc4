using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

/// <summary>Every format from Parquet gives the same examples as the same rows from JSONL.</summary>
public sealed class ParquetFormatTests : IDisposable
{
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static LoadedDataset Load(string path) => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy);

    private static List<MessageCell> Chat(params (string Role, string Content)[] messages) =>
        [.. messages.Select(m => MessageCell.Of(m.Role, m.Content))];

    [Fact]
    public void Standard()
    {
        string parquet = _dir.Parquet("standard.parquet", new[]
        {
            new StandardRow { Prompt = "ab", Completion = "c", Label = true, Source = "x" },
            new StandardRow { Prompt = "", Completion = "dé", Label = false },
        });
        string jsonl = _dir.Jsonl("standard.jsonl",
            """{"prompt": "ab", "completion": "c", "label": true, "source": "x"}""",
            """{"prompt": "", "completion": "dé", "label": false}""");

        LoadedDataset d = Load(parquet);
        Assert.Equal(DatasetFormats.Standard, d.Format);
        Assert.Equal(["1:True:[97,98]->[99,256]", "2:False:[256]->[100,195,169,256]"], Describe(d));
        Assert.Equal(Describe(Load(jsonl)), Describe(d));
    }

    [Fact]
    public void Conversational()
    {
        string parquet = _dir.Parquet("chat.parquet", new[]
        {
            new ConversationalRow { Prompt = Chat(("system", "S"), ("user", "Hi")), Completion = Chat(("assistant", "Yo")), Label = true },
            new ConversationalRow { Prompt = [], Completion = Chat(("assistant", "A"), ("user", "B")), Label = false },
        });
        string jsonl = _dir.Jsonl("chat.jsonl",
            """{"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": true}""",
            """{"prompt": [], "completion": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "B"}], "label": false}""");

        LoadedDataset d = Load(parquet);
        Assert.Equal(DatasetFormats.Conversational, d.Format);
        Assert.Equal(Bytes("system: S\nuser: Hi\nassistant: "), d.Examples[0].PromptIds);
        Assert.Equal(BytesEos("A\nuser: B"), d.Examples[1].CompletionIds);
        Assert.Equal(Describe(Load(jsonl)), Describe(d));
    }

    [Fact]
    public void PairedIsInterleaved()
    {
        string parquet = _dir.Parquet("paired.parquet", new[]
        {
            new PairedRow { Prompt = "p", Chosen = "good", Rejected = "bad" },
            new PairedRow { Prompt = "q", Chosen = "yes", Rejected = "no" },
        });
        LoadedDataset d = Load(parquet);
        Assert.Equal(DatasetFormats.Paired, d.Format);
        Assert.Equal(
            ["1:True:[112]->[103,111,111,100,256]", "1:False:[112]->[98,97,100,256]", "2:True:[113]->[121,101,115,256]", "2:False:[113]->[110,111,256]"],
            Describe(d));
    }

    [Fact]
    public void ConversationalPaired()
    {
        string parquet = _dir.Parquet("paired-chat.parquet", new[]
        {
            new PairedConversationalRow { Prompt = Chat(("user", "Q")), Chosen = Chat(("assistant", "A")), Rejected = Chat(("assistant", "B")) },
        });
        string jsonl = _dir.Jsonl("paired-chat.jsonl",
            """{"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}], "rejected": [{"role": "assistant", "content": "B"}]}""");
        LoadedDataset d = Load(parquet);
        Assert.Equal(DatasetFormats.Paired, d.Format);
        Assert.Equal([true, false], d.Examples.Select(e => e.Label));
        Assert.Equal(Describe(Load(jsonl)), Describe(d));
    }

    [Fact]
    public void TokenizedInt64()
    {
        string parquet = _dir.Parquet("tok.parquet", new[]
        {
            new TokenizedRow { PromptIds = [1, 2, 3], CompletionIds = [4, 256], Label = true },
            new TokenizedRow { PromptIds = [], CompletionIds = [0], Label = false },
        });
        LoadedDataset d = Load(parquet);
        Assert.Equal(DatasetFormats.Tokenized, d.Format);
        Assert.Equal(["1:True:[1,2,3]->[4,256]", "2:False:[256]->[0]"], Describe(d));
    }

    [Fact]
    public void TokenizedInt32()
    {
        string parquet = _dir.Parquet("tok32.parquet", new[]
        {
            new TokenizedInt32Row { PromptIds = [7], CompletionIds = [8, 9], Label = false },
            new TokenizedInt32Row { PromptIds = [10], CompletionIds = [11], Label = true },
        });
        Assert.Equal(["1:False:[7]->[8,9]", "2:True:[10]->[11]"], Describe(Load(parquet)));
    }

    [Fact]
    public void RowNumbersRunOnAcrossRowGroups()
    {
        var rows = Enumerable.Range(0, 5).Select(i => new StandardRow { Prompt = $"{i}", Completion = "c", Label = i % 2 == 0 });
        LoadedDataset d = Load(_dir.Parquet("groups.parquet", rows, rowGroupSize: 2));
        Assert.Equal([1, 2, 3, 4, 5], d.Examples.Select(e => e.SourceRow));
        Assert.Equal([48, 49, 50, 51, 52], d.Examples.Select(e => e.PromptIds.Single()));
    }

    [Fact]
    public void TruncationAppliesToParquetToo()
    {
        string parquet = _dir.Parquet("long.parquet", new[]
        {
            new StandardRow { Prompt = "abcdefgh", Completion = "xyz", Label = true },
            new StandardRow { Prompt = "abcdefgh", Completion = "xyz", Label = false },
        });
        LoadedDataset d = KtoDatasetLoader.Load(parquet, ByteTokenizer.Instance, new DatasetLoadOptions(6, 3, null));
        Assert.Equal(Bytes("fgh"), d.Examples[0].PromptIds);
        Assert.Equal(Bytes("xyz"), d.Examples[0].CompletionIds);
    }
}
