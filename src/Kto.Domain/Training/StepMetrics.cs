namespace Kto.Domain.Training;

/// <summary>
/// Sums behind the logged metrics, added over shards, micro-batches and steps; turned into TRL-named means by
/// <see cref="ToDictionary"/>. Sums (not means) so that any split of the work adds up to the same figures.
/// </summary>
public sealed record StepMetrics : IWindowMetrics<StepMetrics>
{
    /// <summary>Σ of the micro-batch mean losses (each already divided over its micro-batch).</summary>
    public double LossSum { get; init; }
    /// <summary>Number of micro-batches (for the mean loss and KL).</summary>
    public int MicroBatches { get; init; }
    /// <summary>Σ of the clamped KL estimate per micro-batch.</summary>
    public double KlSum { get; init; }
    /// <summary>Σ of the raw (unclamped) KL estimate per micro-batch.</summary>
    public double KlRawSum { get; init; }
    /// <summary>Desirable examples seen.</summary>
    public long ChosenCount { get; init; }
    /// <summary>Undesirable examples seen.</summary>
    public long RejectedCount { get; init; }
    /// <summary>Σ β·r over desirable examples.</summary>
    public double ChosenRewardSum { get; init; }
    /// <summary>Σ β·r over undesirable examples.</summary>
    public double RejectedRewardSum { get; init; }
    /// <summary>Σ policy log-probs over desirable examples.</summary>
    public double ChosenLogpSum { get; init; }
    /// <summary>Σ policy log-probs over undesirable examples.</summary>
    public double RejectedLogpSum { get; init; }
    /// <summary>Σ mean-logit over desirable completion tokens.</summary>
    public double ChosenLogitSum { get; init; }
    /// <summary>Σ mean-logit over undesirable completion tokens.</summary>
    public double RejectedLogitSum { get; init; }
    /// <summary>Desirable completion tokens.</summary>
    public long ChosenTokens { get; init; }
    /// <summary>Undesirable completion tokens.</summary>
    public long RejectedTokens { get; init; }
    /// <summary>Tokens processed (examples and KL pairs), for tokens/s.</summary>
    public long Tokens { get; init; }

    /// <summary>Nothing yet.</summary>
    public static StepMetrics Zero { get; } = new();

    /// <summary>Adds two sets of sums.</summary>
    public static StepMetrics operator +(StepMetrics a, StepMetrics b) => new()
    {
        LossSum = a.LossSum + b.LossSum,
        MicroBatches = a.MicroBatches + b.MicroBatches,
        KlSum = a.KlSum + b.KlSum,
        KlRawSum = a.KlRawSum + b.KlRawSum,
        ChosenCount = a.ChosenCount + b.ChosenCount,
        RejectedCount = a.RejectedCount + b.RejectedCount,
        ChosenRewardSum = a.ChosenRewardSum + b.ChosenRewardSum,
        RejectedRewardSum = a.RejectedRewardSum + b.RejectedRewardSum,
        ChosenLogpSum = a.ChosenLogpSum + b.ChosenLogpSum,
        RejectedLogpSum = a.RejectedLogpSum + b.RejectedLogpSum,
        ChosenLogitSum = a.ChosenLogitSum + b.ChosenLogitSum,
        RejectedLogitSum = a.RejectedLogitSum + b.RejectedLogitSum,
        ChosenTokens = a.ChosenTokens + b.ChosenTokens,
        RejectedTokens = a.RejectedTokens + b.RejectedTokens,
        Tokens = a.Tokens + b.Tokens,
    };

    /// <summary>Adds two sets of sums (named alternative to the operator).</summary>
    public static StepMetrics Add(StepMetrics a, StepMetrics b) => a + b;

    /// <summary>Mean loss over micro-batches.</summary>
    public double Loss => MicroBatches == 0 ? double.NaN : LossSum / MicroBatches;

    /// <summary>
    /// TRL's metric names with their values. A class absent from the window has no entry for its rewards,
    /// log-probs and logits (rather than a misleading 0), and then no margin.
    /// </summary>
    public Dictionary<string, double> ToDictionary()
    {
        var d = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["loss"] = Loss,
            ["kl"] = MicroBatches == 0 ? 0 : KlSum / MicroBatches,
            ["kl_raw"] = MicroBatches == 0 ? 0 : KlRawSum / MicroBatches,
            ["count/chosen"] = ChosenCount,
            ["count/rejected"] = RejectedCount,
        };
        if (ChosenCount > 0)
        {
            d["rewards/chosen"] = ChosenRewardSum / ChosenCount;
            d["logps/chosen"] = ChosenLogpSum / ChosenCount;
            d["logits/chosen"] = ChosenTokens == 0 ? 0 : ChosenLogitSum / ChosenTokens;
        }
        if (RejectedCount > 0)
        {
            d["rewards/rejected"] = RejectedRewardSum / RejectedCount;
            d["logps/rejected"] = RejectedLogpSum / RejectedCount;
            d["logits/rejected"] = RejectedTokens == 0 ? 0 : RejectedLogitSum / RejectedTokens;
        }
        if (ChosenCount > 0 && RejectedCount > 0)
            d["rewards/margins"] = d["rewards/chosen"] - d["rewards/rejected"];
        return d;
    }
}
