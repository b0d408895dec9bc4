// TEMPORARY: replaced by the data layer on merge.
namespace Kto.Domain.Data;

/// <summary>tmp</summary>
public sealed record KtoExample(int[] PromptIds, int[] CompletionIds, bool Label, int SourceRow);
/// <summary>tmp</summary>
public sealed record DatasetLoadOptions(int MaxLength, int MaxPromptLength, int? MaxCompletionLength);
/// <summary>tmp</summary>
public sealed record LoadedDataset(string Path, string Format, IReadOnlyList<KtoExample> Examples, int DroppedNoRoom, int DesirableCount, int UndesirableCount, IReadOnlyList<string> Warnings);
/// <summary>tmp</summary>
public static class KtoDatasetLoader
{
    /// <summary>tmp</summary>
    public static LoadedDataset Load(string path, Tokenization.ITextTokenizer tokenizer, DatasetLoadOptions options) => throw new NotImplementedException();
}
/// <summary>tmp</summary>
public static class Truncation
{
    /// <summary>tmp</summary>
    public static (int[] Prompt, int[] Completion)? Apply(int[] prompt, int[] completion, DatasetLoadOptions o)
    {
        if (prompt.Length + completion.Length > o.MaxLength) prompt = prompt[Math.Max(0, prompt.Length - o.MaxPromptLength)..];
        int room = o.MaxLength - prompt.Length;
        if (room <= 0) return null;
        return (prompt, completion.Length > room ? completion[..room] : completion);
    }
}
/// <summary>tmp</summary>
public sealed class DataException : Exception { /// <summary>tmp</summary>
public DataException(string m) : base(m) { } /// <summary>tmp</summary>
public DataException() { } /// <summary>tmp</summary>
public DataException(string m, Exception e) : base(m, e) { } }
