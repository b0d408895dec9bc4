namespace Kto.Domain.Tasks;

/// <summary>A prompt and a model's completion of it, not yet judged.</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Completion">The completion text (without EOS).</param>
public sealed record Sample(string Prompt, string Completion);
