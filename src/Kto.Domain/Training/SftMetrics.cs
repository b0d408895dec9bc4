namespace Kto.Domain.Training;

/// <summary>Metric sums of supervised fine-tuning, logged with TRL's SFT names.</summary>
public sealed record SftMetrics : IWindowMetrics<SftMetrics>
{
    /// <summary>Σ of the micro-batch mean token losses.</summary>
    public double LossSum { get; init; }
    /// <summary>Micro-batches.</summary>
    public int MicroBatches { get; init; }
    /// <summary>Completion tokens whose argmax prediction was right.</summary>
    public long CorrectTokens { get; init; }
    /// <summary>Completion tokens scored.</summary>
    public long CompletionTokens { get; init; }
    /// <inheritdoc />
    public long Tokens { get; init; }

    /// <inheritdoc />
    public static SftMetrics Zero { get; } = new();

    /// <inheritdoc />
    public static SftMetrics operator +(SftMetrics a, SftMetrics b) => new()
    {
        LossSum = a.LossSum + b.LossSum,
        MicroBatches = a.MicroBatches + b.MicroBatches,
        CorrectTokens = a.CorrectTokens + b.CorrectTokens,
        CompletionTokens = a.CompletionTokens + b.CompletionTokens,
        Tokens = a.Tokens + b.Tokens,
    };

    /// <summary>Adds two sets of sums (named alternative to the operator).</summary>
    public static SftMetrics Add(SftMetrics a, SftMetrics b) => a + b;

    /// <inheritdoc />
    public Dictionary<string, double> ToDictionary() => new(StringComparer.Ordinal)
    {
        ["loss"] = MicroBatches == 0 ? double.NaN : LossSum / MicroBatches,
        ["mean_token_accuracy"] = CompletionTokens == 0 ? double.NaN : (double)CorrectTokens / CompletionTokens,
        ["num_tokens"] = CompletionTokens,
    };
}
