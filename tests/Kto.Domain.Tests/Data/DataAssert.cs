using Kto.Domain.Data;

namespace Kto.Domain.Tests.Data;

internal static class DataAssert
{
    /// <summary>Asserts that <paramref name="load"/> throws a <see cref="DataException"/> whose message has every fragment.</summary>
    public static DataException Fails(Action load, params string[] fragments)
    {
        DataException e = Assert.Throws<DataException>(load);
        foreach (string fragment in fragments) Assert.Contains(fragment, e.Message);
        return e;
    }

    /// <summary>A compact, comparable text of the examples.</summary>
    public static string[] Describe(LoadedDataset d) =>
        [.. d.Examples.Select(e => $"{e.SourceRow}:{e.Label}:[{string.Join(",", e.PromptIds)}]->[{string.Join(",", e.CompletionIds)}]")];

    public static int[] Bytes(string text) => [.. System.Text.Encoding.UTF8.GetBytes(text).Select(b => (int)b)];

    public static int[] BytesEos(string text) => [.. Bytes(text), Kto.Domain.Tokenization.ByteTokenizer.Eos];
}
