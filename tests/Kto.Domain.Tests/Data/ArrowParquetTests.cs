using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

/// <summary>Files written by Apache Arrow (see Data/Fixtures/README.md), laid out as Hugging Face datasets writes them.</summary>
public class ArrowParquetTests
{
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);

    private static LoadedDataset Load(string name) =>
        KtoDatasetLoader.Load(Path.Combine(AppContext.BaseDirectory, "Data", "Fixtures", name), ByteTokenizer.Instance, Roomy);

    [Fact]
    public void ConversationalListsOfStructsWithAnExtraColumn()
    {
        LoadedDataset d = Load("arrow-chat.parquet");
        Assert.Equal(DatasetFormats.Conversational, d.Format);
        Assert.Equal(Bytes("user: Hi\nassistant: "), d.Examples[0].PromptIds);
        Assert.Equal(BytesEos("Yo"), d.Examples[0].CompletionIds);
        Assert.Equal(Bytes("system: S\nuser: Q\nassistant: "), d.Examples[1].PromptIds);
        Assert.Equal(BytesEos("A"), d.Examples[1].CompletionIds);
        Assert.Equal([true, false], d.Examples.Select(e => e.Label));
    }

    [Fact]
    public void TokenizedInt64AndInt32Lists() =>
        Assert.Equal(["1:False:[1,2]->[3,256]", "2:True:[256]->[4]"], Describe(Load("arrow-tok.parquet")));

    [Fact]
    public void PairedLargeAndPlainStrings() =>
        Assert.Equal(
            ["1:True:[112]->[103,111,111,100,256]", "1:False:[112]->[98,97,100,256]", "2:True:[113]->[121,101,115,256]", "2:False:[113]->[110,111,256]"],
            Describe(Load("arrow-paired.parquet")));
}
