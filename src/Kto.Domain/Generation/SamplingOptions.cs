namespace Kto.Domain.Generation;

/// <summary>How <see cref="Sampler"/> draws completions.</summary>
/// <param name="MaxNewTokens">Most tokens generated per completion (≥ 1); the EOS that ends a completion counts.</param>
/// <param name="Temperature">Softmax temperature (≥ 0); 0 = greedy decoding (argmax), which ignores the seed.</param>
/// <param name="TopK">Keep only the <paramref name="TopK"/> most likely tokens before sampling (≥ 0); 0 = off.</param>
/// <param name="TopP">Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches
/// <paramref name="TopP"/> (in (0, 1]); 1 = off. The most likely token is always kept.</param>
/// <param name="Seed">Seed of the sampling randomness; each (prompt, sample) pair draws from its own stream.</param>
/// <param name="NumSamples">Completions per prompt (≥ 1).</param>
public sealed record SamplingOptions(
    int MaxNewTokens,
    double Temperature,
    int TopK,
    double TopP,
    long Seed,
    int NumSamples = SamplingDefaults.NumSamples)
{
    /// <summary>True when decoding is greedy (temperature 0).</summary>
    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 1)
            throw new ArgumentException($"max_new_tokens must be at least 1, got {MaxNewTokens}");
        if (!double.IsFinite(Temperature) || Temperature < 0)
            throw new ArgumentException($"temperature must be a finite number ≥ 0 (0 = greedy), got {Temperature}");
        if (TopK < 0)
            throw new ArgumentException($"top_k must be ≥ 0 (0 = off), got {TopK}");
        if (!(TopP > 0 && TopP <= 1))
            throw new ArgumentException($"top_p must lie in (0, 1] (1 = off), got {TopP}");
        if (NumSamples < 1)
            throw new ArgumentException($"num_samples must be at least 1, got {NumSamples}");
    }
}
