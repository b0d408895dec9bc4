using Kto.Domain.Data;

namespace Kto.Domain.Training;

/// <summary>
/// One example as the step consumes it: the example, its KL pair (its prompt with another example's completion,
/// truncated like any example) and its position in the dataset, which keys precomputed reference log-probs.
/// </summary>
/// <param name="Index">0-based position in the loaded dataset.</param>
/// <param name="Example">Prompt, completion and label.</param>
/// <param name="KlPromptIds">Prompt of the KL pair (this example's prompt, possibly cut further to fit).</param>
/// <param name="KlCompletionIds">Completion of the KL pair (another example's completion).</param>
public sealed record TrainItem(int Index, KtoExample Example, int[] KlPromptIds, int[] KlCompletionIds)
{
    /// <summary>Tokens in the example plus its KL pair, for tokens/s.</summary>
    public int TokenCount => Example.PromptIds.Length + Example.CompletionIds.Length + KlPromptIds.Length + KlCompletionIds.Length;
}

/// <summary>Summed completion log-probs of one example and of its KL pair under the reference model.</summary>
/// <param name="Completion">log π_ref(y|x).</param>
/// <param name="Kl">log π_ref(y'|x) of the KL pair.</param>
public readonly record struct ReferenceLogps(double Completion, double Kl);
