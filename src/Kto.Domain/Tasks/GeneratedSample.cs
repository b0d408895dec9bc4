namespace Kto.Domain.Tasks;

/// <summary>One completion written by <c>kto generate</c>.</summary>
/// <param name="PromptIndex">0-based position of the prompt in the prompts file (blank lines not counted).</param>
/// <param name="SampleIndex">0-based number of this completion among the prompt's samples.</param>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Completion">The generated text, without EOS.</param>
public sealed record GeneratedSample(int PromptIndex, int SampleIndex, string Prompt, string Completion);
