namespace Kto.Domain.Tasks;

/// <summary>A sample with its thumbs-up (<c>true</c>) or thumbs-down (<c>false</c>).</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Completion">The completion text.</param>
/// <param name="Label">Whether the completion is desirable.</param>
public sealed record LabelledSample(string Prompt, string Completion, bool Label);
