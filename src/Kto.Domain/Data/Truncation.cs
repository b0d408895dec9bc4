namespace Kto.Domain.Data;

/// <summary>Fits a prompt and a completion into the token budgets of <see cref="DatasetLoadOptions"/>; pure.</summary>
/// <remarks>
/// <list type="number">
/// <item>When <see cref="DatasetLoadOptions.MaxCompletionLength"/> is set, the completion is cut to that many tokens
/// (its start is kept).</item>
/// <item>When prompt plus completion is longer than <see cref="DatasetLoadOptions.MaxLength"/>, the prompt is cut to
/// <see cref="DatasetLoadOptions.MaxPromptLength"/> tokens keeping its end (the tokens nearest the completion),
/// then the completion is cut to <c>MaxLength − len(prompt)</c> tokens keeping its start.</item>
/// <item>When no completion token is left the pair cannot be used and the result is null.</item>
/// </list>
/// Used for dataset examples and for KL pairs (prompt i with completion j).
/// </remarks>
public static class Truncation
{
    /// <summary>The truncated prompt and completion, or null when no completion token fits.</summary>
    /// <remarks>The inputs are never modified; an input that needs no cut is returned as is.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">A budget in <paramref name="options"/> is out of range.</exception>
    public static (int[] Prompt, int[] Completion)? Apply(int[] prompt, int[] completion, DatasetLoadOptions options)
    {
        options.Validate();
        if (options.MaxCompletionLength is int cap && completion.Length > cap) completion = completion[..cap];
        if (prompt.Length + completion.Length > options.MaxLength)
        {
            if (prompt.Length > options.MaxPromptLength) prompt = prompt[^options.MaxPromptLength..];
            int room = Math.Max(0, options.MaxLength - prompt.Length);
            if (completion.Length > room) completion = completion[..room];
        }
        return completion.Length == 0 ? null : (prompt, completion);
    }
}
