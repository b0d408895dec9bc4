using Kto.Domain.Training;

namespace Kto.Domain.Cluster;

/// <summary><see cref="StepMetrics"/> as a vector of doubles, so the group can sum it with one all-reduce.</summary>
public static class MetricVector
{
    /// <summary>Entries in the vector.</summary>
    public const int Length = 15;

    /// <summary>The sums as a vector.</summary>
    public static double[] From(StepMetrics m) =>
    [
        m.LossSum, m.MicroBatches, m.KlSum, m.KlRawSum, m.ChosenCount, m.RejectedCount, m.ChosenRewardSum, m.RejectedRewardSum,
        m.ChosenLogpSum, m.RejectedLogpSum, m.ChosenLogitSum, m.RejectedLogitSum, m.ChosenTokens, m.RejectedTokens, m.Tokens,
    ];

    /// <summary>The sums from a vector made by <see cref="From"/>.</summary>
    public static StepMetrics To(double[] v) => new()
    {
        LossSum = v[0], MicroBatches = (int)v[1], KlSum = v[2], KlRawSum = v[3], ChosenCount = (long)v[4], RejectedCount = (long)v[5],
        ChosenRewardSum = v[6], RejectedRewardSum = v[7], ChosenLogpSum = v[8], RejectedLogpSum = v[9], ChosenLogitSum = v[10],
        RejectedLogitSum = v[11], ChosenTokens = (long)v[12], RejectedTokens = (long)v[13], Tokens = (long)v[14],
    };
}
