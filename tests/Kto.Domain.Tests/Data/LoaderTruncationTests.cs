using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

public sealed class LoaderTruncationTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void LongPromptKeepsItsEndAndCompletionKeepsItsStart()
    {
        string path = _dir.Jsonl("long.jsonl",
            """{"prompt": "abcdefgh", "completion": "xyz", "label": true}""",
            """{"prompt": "ab", "completion": "uvwxyz", "label": false}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, ByteTokenizer.Instance, new DatasetLoadOptions(6, 3, null));

        // Row 1: 8 + 4 > 6, prompt cut to its last 3 ("fgh"), completion to 6 - 3 = 3 tokens ("xyz", EOS cut off).
        Assert.Equal(Bytes("fgh"), d.Examples[0].PromptIds);
        Assert.Equal(Bytes("xyz"), d.Examples[0].CompletionIds);
        // Row 2: 2 + 7 > 6, the prompt fits max_prompt_length, completion cut to 6 - 2 = 4 tokens.
        Assert.Equal(Bytes("ab"), d.Examples[1].PromptIds);
        Assert.Equal(Bytes("uvwx"), d.Examples[1].CompletionIds);
        Assert.Equal(0, d.DroppedNoRoom);
    }

    [Fact]
    public void MaxCompletionLengthCapsTheCompletion()
    {
        string path = _dir.Jsonl("cap.jsonl",
            """{"prompt": "a", "completion": "bcdef", "label": true}""",
            """{"prompt": "a", "completion": "b", "label": false}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, ByteTokenizer.Instance, new DatasetLoadOptions(100, 50, 2));
        Assert.Equal(Bytes("bc"), d.Examples[0].CompletionIds);
        Assert.Equal(BytesEos("b"), d.Examples[1].CompletionIds);
    }

    [Fact]
    public void ExamplesWithNoRoomAreDroppedAndCounted()
    {
        string path = _dir.Jsonl("tight.jsonl",
            """{"prompt": "", "completion": "ab", "label": true}""",
            """{"prompt": "abcdef", "completion": "x", "label": false}""",
            """{"prompt": "a", "completion": "b", "label": false}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, ByteTokenizer.Instance, new DatasetLoadOptions(4, 4, null));

        Assert.Equal(1, d.DroppedNoRoom);
        Assert.Equal(["1:True:[256]->[97,98,256]", "3:False:[97]->[98,256]"], Describe(d));
        Assert.Equal((1, 1), (d.DesirableCount, d.UndesirableCount));
        Assert.Contains(d.Warnings, w => w.Contains("1 of 3 examples dropped"));
    }

    [Fact]
    public void PairedRowWithNoRoomDropsBothHalves()
    {
        string path = _dir.Jsonl("paired-tight.jsonl",
            """{"prompt": "abcdef", "chosen": "x", "rejected": "y"}""",
            """{"prompt": "a", "chosen": "x", "rejected": "y"}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, ByteTokenizer.Instance, new DatasetLoadOptions(3, 3, null));
        Assert.Equal(2, d.DroppedNoRoom);
        Assert.Equal(["2:True:[97]->[120,256]", "2:False:[97]->[121,256]"], Describe(d));
    }

    [Fact]
    public void AllExamplesDroppedIsAnError()
    {
        string path = _dir.Jsonl("none-fit.jsonl",
            """{"prompt": "abcdef", "completion": "x", "label": true}""",
            """{"prompt": "ghijkl", "completion": "y", "label": false}""");
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, new DatasetLoadOptions(4, 4, null)),
            "none-fit.jsonl", "all 2 examples dropped", "max_length 4");
    }

    [Fact]
    public void BadOptionsThrowBeforeReading() =>
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            KtoDatasetLoader.Load(_dir.PathOf("missing.jsonl"), ByteTokenizer.Instance, new DatasetLoadOptions(0, 0, null)));
}
