namespace Kto.Domain.Tasks;

/// <summary>A prompt read from a prompts file, with the line it came from (for error messages).</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Line">Its 1-based line number in the file.</param>
public sealed record PromptRow(string Prompt, int Line);
