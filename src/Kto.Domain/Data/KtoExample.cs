namespace Kto.Domain.Data;

/// <summary>One training example after tokenization and truncation.</summary>
/// <param name="PromptIds">The prompt's token ids (may be empty).</param>
/// <param name="CompletionIds">The completion's token ids (never empty); text completions end with EOS unless truncation cut it.</param>
/// <param name="Label">True for a desirable completion, false for an undesirable one.</param>
/// <param name="SourceRow">Where the example came from: the 1-based line of a JSONL file or the 1-based row of a Parquet file.</param>
public sealed record KtoExample(int[] PromptIds, int[] CompletionIds, bool Label, int SourceRow);
