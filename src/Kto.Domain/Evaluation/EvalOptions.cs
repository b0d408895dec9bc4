namespace Kto.Domain.Evaluation;

/// <summary>How <see cref="Evaluator"/> samples; defaults are the <c>kto eval</c> defaults.</summary>
/// <param name="SamplesPerPrompt">Completions sampled per prompt for the desirable rate.</param>
/// <param name="Temperature">Sampling temperature for the desirable rate (greedy accuracy always uses argmax).</param>
/// <param name="Seed">Sampling seed.</param>
/// <param name="BatchSize">Sequences per forward pass.</param>
/// <param name="MaxNewTokens">Longest completion generated.</param>
public sealed record EvalOptions(
    int SamplesPerPrompt = EvalOptions.DefaultSamples,
    double Temperature = EvalOptions.DefaultTemperature,
    long Seed = 0,
    int BatchSize = EvalOptions.DefaultBatchSize,
    int MaxNewTokens = EvalOptions.DefaultMaxNewTokens)
{
    /// <summary>Four samples per prompt: enough to estimate the rate without making eval slow.</summary>
    public const int DefaultSamples = 4;

    /// <summary>Plain sampling from the model's distribution.</summary>
    public const double DefaultTemperature = 1.0;

    /// <summary>Sequences per forward pass.</summary>
    public const int DefaultBatchSize = 128;

    /// <summary>Enough for the answers of the shipped tasks.</summary>
    public const int DefaultMaxNewTokens = 8;
}
