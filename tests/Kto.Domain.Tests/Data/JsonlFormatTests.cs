using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

public sealed class JsonlFormatTests : IDisposable
{
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static LoadedDataset Load(string path) => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy);

    [Fact]
    public void StandardRowsAreTokenizedWithEosAppendedToTheCompletion()
    {
        string path = _dir.Jsonl("standard.jsonl",
            """{"prompt": "ab", "completion": "c", "label": true, "id": 7}""",
            "",
            """{"prompt": "", "completion": "dé", "label": false, "meta": {"x": [1, 2]}}""");
        LoadedDataset d = Load(path);

        Assert.Equal(DatasetFormats.Standard, d.Format);
        Assert.Equal(path, d.Path);
        Assert.Equal(2, d.Examples.Count);
        Assert.Equal(new KtoExample([97, 98], [99, ByteTokenizer.Eos], true, 1), d.Examples[0], ExampleComparer.Instance);
        Assert.Equal([ByteTokenizer.Eos], d.Examples[1].PromptIds); // an empty prompt is BOS (the byte tokenizer's is 256, its EOS)
        Assert.Equal([100, 0xC3, 0xA9, ByteTokenizer.Eos], d.Examples[1].CompletionIds);
        Assert.False(d.Examples[1].Label);
        Assert.Equal(3, d.Examples[1].SourceRow); // the blank line still counts
        Assert.Equal((1, 1, 0), (d.DesirableCount, d.UndesirableCount, d.DroppedNoRoom));
        Assert.Empty(d.Warnings);
    }

    [Fact]
    public void ConversationalRowsAreRenderedWithTheChatTemplate()
    {
        string path = _dir.Jsonl("chat.jsonl",
            """{"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": true}""",
            """{"prompt": [], "completion": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "B"}], "label": false}""");
        LoadedDataset d = Load(path);

        Assert.Equal(DatasetFormats.Conversational, d.Format);
        Assert.Equal(Bytes("system: S\nuser: Hi\nassistant: "), d.Examples[0].PromptIds);
        Assert.Equal(BytesEos("Yo"), d.Examples[0].CompletionIds);
        Assert.Equal(Bytes("assistant: "), d.Examples[1].PromptIds);
        Assert.Equal(BytesEos("A\nuser: B"), d.Examples[1].CompletionIds);
    }

    [Fact]
    public void PairedRowsAreUnpairedIntoAdjacentChosenThenRejected()
    {
        string path = _dir.Jsonl("paired.jsonl",
            """{"prompt": "p", "chosen": "good", "rejected": "bad"}""",
            """{"prompt": "q", "chosen": "yes", "rejected": "no", "score": 3}""",
            """{"prompt": "r", "chosen": "up", "rejected": "down"}""");
        LoadedDataset d = Load(path);

        Assert.Equal(DatasetFormats.Paired, d.Format);
        Assert.Equal(
            [
                "1:True:[112]->[103,111,111,100,256]", "1:False:[112]->[98,97,100,256]",
                "2:True:[113]->[121,101,115,256]", "2:False:[113]->[110,111,256]",
                "3:True:[114]->[117,112,256]", "3:False:[114]->[100,111,119,110,256]",
            ],
            Describe(d));
        Assert.Equal((3, 3), (d.DesirableCount, d.UndesirableCount));
        Assert.Equal([true, false, true, false, true, false], d.Examples.Select(e => e.Label));
    }

    [Fact]
    public void ConversationalPairedRowsAreRenderedAndUnpaired()
    {
        string path = _dir.Jsonl("paired-chat.jsonl",
            """{"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}], "rejected": [{"role": "assistant", "content": "B"}]}""");
        LoadedDataset d = Load(path);

        Assert.Equal(DatasetFormats.Paired, d.Format);
        Assert.Equal(2, d.Examples.Count);
        Assert.Equal(Bytes("user: Q\nassistant: "), d.Examples[0].PromptIds);
        Assert.Equal(d.Examples[0].PromptIds, d.Examples[1].PromptIds);
        Assert.Equal(BytesEos("A"), d.Examples[0].CompletionIds);
        Assert.Equal(BytesEos("B"), d.Examples[1].CompletionIds);
        Assert.True(d.Examples[0].Label);
        Assert.False(d.Examples[1].Label);
    }

    [Fact]
    public void TokenizedIdsAreUsedAsGivenWithoutEos()
    {
        string path = _dir.Jsonl("tok.jsonl",
            """{"prompt_ids": [1, 2, 3], "completion_ids": [4, 256], "label": true}""",
            """{"prompt_ids": [], "completion_ids": [0], "label": false}""");
        LoadedDataset d = Load(path);

        Assert.Equal(DatasetFormats.Tokenized, d.Format);
        Assert.Equal(["1:True:[1,2,3]->[4,256]", "2:False:[256]->[0]"], Describe(d));
    }

    [Fact]
    public void CrlfLineEndingsAndAByteOrderMarkAreAccepted()
    {
        byte[] bom = [0xEF, 0xBB, 0xBF];
        byte[] body = System.Text.Encoding.UTF8.GetBytes(
            "{\"prompt\": \"a\", \"completion\": \"b\", \"label\": true}\r\n\r\n{\"prompt\": \"c\", \"completion\": \"d\", \"label\": false}");
        LoadedDataset d = Load(_dir.Bytes("crlf.jsonl", [.. bom, .. body]));
        Assert.Equal(["1:True:[97]->[98,256]", "3:False:[99]->[100,256]"], Describe(d));
    }

    [Fact]
    public void UpperCaseExtensionIsAccepted()
    {
        string path = _dir.Jsonl("UPPER.JSONL", """{"prompt": "a", "completion": "b", "label": true}""", """{"prompt": "a", "completion": "c", "label": false}""");
        Assert.Equal(2, Load(path).Examples.Count);
    }

    [Fact]
    public void SingleClassDatasetLoadsWithAWarning()
    {
        string path = _dir.Jsonl("only-good.jsonl",
            """{"prompt": "a", "completion": "b", "label": true}""",
            """{"prompt": "c", "completion": "d", "label": true}""");
        LoadedDataset d = Load(path);

        Assert.Equal((2, 0), (d.DesirableCount, d.UndesirableCount));
        string warning = Assert.Single(d.Warnings);
        Assert.Contains("only-good.jsonl", warning);
        Assert.Contains("single-class", warning);
        Assert.Contains("KTO still trains", warning);
        Assert.Contains("undesirable", warning);

        path = _dir.Jsonl("only-bad.jsonl", """{"prompt": "a", "completion": "b", "label": false}""");
        warning = Assert.Single(Load(path).Warnings);
        Assert.Contains("are undesirable (label false) and none desirable", warning);
    }

    [Fact]
    public void Gpt2TokenizerEncodesPromptAndCompletionSeparatelyWithItsEos()
    {
        string path = _dir.Jsonl("gpt2.jsonl",
            """{"prompt": "Hello world", "completion": " Hello", "label": true}""",
            """{"prompt": "Hello", "completion": " world", "label": false}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, Gpt2Tokenizer.Instance, Roomy);

        Assert.Equal([15496, 995], d.Examples[0].PromptIds);
        Assert.Equal([18435, Gpt2Tokenizer.Eos], d.Examples[0].CompletionIds);
        Assert.Equal([15496], d.Examples[1].PromptIds);
        Assert.Equal([995, Gpt2Tokenizer.Eos], d.Examples[1].CompletionIds);
    }

    private sealed class ExampleComparer : IEqualityComparer<KtoExample>
    {
        public static ExampleComparer Instance { get; } = new();

        public bool Equals(KtoExample? x, KtoExample? y) =>
            x is not null && y is not null && x.PromptIds.SequenceEqual(y.PromptIds) && x.CompletionIds.SequenceEqual(y.CompletionIds)
            && x.Label == y.Label && x.SourceRow == y.SourceRow;

        public int GetHashCode(KtoExample obj) => obj.SourceRow;
    }
}
