namespace Kto.Domain.Generation;

/// <summary>Defaults of <see cref="SamplingOptions"/> and of the commands that sample (<c>kto generate</c>).</summary>
public static class SamplingDefaults
{
    /// <summary>Longest completion, in tokens, when none is asked for.</summary>
    public const int MaxNewTokens = 16;

    /// <summary>Softmax temperature: 1 samples from the model's own distribution; 0 means greedy decoding.</summary>
    public const double Temperature = 1.0;

    /// <summary>Top-k cut-off: 0 keeps every token.</summary>
    public const int TopK = 0;

    /// <summary>Nucleus (top-p) mass: 1 keeps every token.</summary>
    public const double TopP = 1.0;

    /// <summary>Seed of the sampling randomness.</summary>
    public const long Seed = 0;

    /// <summary>Completions drawn per prompt.</summary>
    public const int NumSamples = 1;

    /// <summary>Sequences advanced together in one forward pass.</summary>
    public const int BatchSize = 64;
}
