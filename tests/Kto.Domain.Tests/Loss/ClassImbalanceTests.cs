using Kto.Domain.Loss;

namespace Kto.Domain.Tests.Loss;

/// <summary>
/// TRL's class-imbalance rule: with D = n_U·w_U/n_D and U = n_D·w_D/n_U, warn unless
/// w_D ∈ [round(D, 2), round(1.33·D, 2)] or w_U ∈ [round(U/1.33, 2), round(U, 2)], rounding as Python's round().
/// Every expectation below is worked out by hand in the comment next to it.
/// </summary>
public class ClassImbalanceTests
{
    public static TheoryData<long, long, double, double, bool> Table => new()
    {
        // 4:1, unweighted. D = 0.25 → [0.25, 0.33]; U = 4 → [3.01, 4.0]. Neither 1 nor 1 fits: warn.
        { 800, 200, 1, 1, true },
        // Undesirable weight 4: D = 1 → [1.0, 1.33] holds w_D = 1 (ratio exactly 1).
        { 800, 200, 1, 4, false },
        // Desirable weight 0.25: U = 1 → [0.75, 1.0] holds w_U = 1.
        { 800, 200, 0.25, 1, false },
        // 3:7, unweighted. D = 2.333… → [2.33, 3.1]; U = 0.4286 → [0.32, 0.43]. Warn.
        { 30, 70, 1, 1, true },
        // w_D = 2.33 is the rounded lower bound; the exact ratio 0.9986 < 1 but rounding lets it through.
        { 30, 70, 2.33, 1, false },
        // w_U = 0.43 is the rounded upper bound of [0.32, 0.43] (exact ratio 0.9967).
        { 30, 70, 1, 0.43, false },
        // Upper bound inclusive: w_D = 0.33 = round(1.33·0.25) (ratio 1.32).
        { 800, 200, 0.33, 1, false },
        // Just above: w_D = 0.34 ∉ [0.25, 0.33]; U = 1.36 → [1.02, 1.36] ∌ 1. Warn.
        { 800, 200, 0.34, 1, true },
        // Just below: w_D = 0.24 ∉ [0.25, 0.33]; U = 0.96 → [0.72, 0.96] ∌ 1. Warn.
        { 800, 200, 0.24, 1, true },
        // Undesirable lower bound inclusive: U = 4 → [3.01, 4.0] ∋ 3.01 (and D = 0.7525 → [0.75, 1.0] ∋ 1).
        { 800, 200, 1, 3.01, false },
        // Ratio 1.33 exactly: D = 0.7519 → [0.75, 1.0] ∋ 1.
        { 133, 100, 1, 1, false },
        // Ratio 1.34: D = 0.7463 → [0.75, 0.99] ∌ 1; U = 1.34 → [1.01, 1.34] ∌ 1. Warn.
        { 134, 100, 1, 1, true },
        // Small counts 3 vs 4: D = 1.333 → [1.33, 1.77] ∌ 1; U = 0.75 → [0.56, 0.75] ∌ 1. Warn.
        { 3, 4, 1, 1, true },
        // Only the undesirable range fits: D = 1.333 → [1.33, 1.77] ∌ 1.78; U = 1.335 → [1.0, 1.33] ∋ 1.
        { 3, 4, 1.78, 1, false },
        // Only the desirable range fits: D = 0.2 → [0.2, 0.27] ∋ 0.27; U = 1.35 → [1.02, 1.35] ∌ 1.
        { 5, 1, 0.27, 1, false },
        // Python rounding at the desirable upper bound: 1.33·0.5 = 0.665 (stored 0.66500000000000004) → 0.67,
        // so w_D = 0.67 fits [0.5, 0.67]; U = 1.34 → [1.01, 1.34] ∌ 1. No warning.
        { 800, 400, 0.67, 1, false },
        // Python rounding at the undesirable upper bound: U = 0.995 (stored 0.99499999999999999) → 0.99,
        // so w_U = 1 ∉ [0.75, 0.99]; D = 2 → [2.0, 2.66] ∌ 1.99. Warn.
        { 200, 400, 1.99, 1, true },
        // Equal counts: never checked, whatever the weights.
        { 100, 100, 5, 1, false },
        { 1, 1, 1, 100, false },
        // A class is empty: nothing to balance.
        { 0, 50, 1, 1, false },
        { 50, 0, 1, 1, false },
        { 0, 0, 1, 1, false },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void WarnsExactlyWhenNeitherWeightIsInItsRange(long nD, long nU, double wD, double wU, bool warns)
    {
        string? message = ClassImbalance.Check(nD, nU, wD, wU);
        if (warns) Assert.NotNull(message);
        else Assert.Null(message);
    }

    public static TheoryData<long, long, double, double, double, double, double, double> Ranges => new()
    {
        // nD, nU, wD, wU → desirable [min, max], undesirable [min, max]
        { 800, 200, 1, 1, 0.25, 0.33, 3.01, 4.0 },     // 1.33·0.25 = 0.3325 → 0.33; 4/1.33 = 3.0075 → 3.01
        { 800, 200, 1, 4, 1.0, 1.33, 3.01, 4.0 },
        { 800, 200, 0.25, 1, 0.25, 0.33, 0.75, 1.0 },  // 1/1.33 = 0.7519 → 0.75
        { 30, 70, 1, 1, 2.33, 3.1, 0.32, 0.43 },       // 7/3 = 2.333 → 2.33; 1.33·7/3 = 3.1033 → 3.1; 3/7 = 0.4286; 0.3222
        { 30, 70, 2.33, 1, 2.33, 3.1, 0.75, 1.0 },     // U = 30·2.33/70 = 0.9986 → 1.0; /1.33 = 0.7508 → 0.75
        { 30, 70, 1, 0.43, 1.0, 1.33, 0.32, 0.43 },    // D = 70·0.43/30 = 1.0033 → 1.0; ·1.33 = 1.3344 → 1.33
        { 3, 4, 1, 1, 1.33, 1.77, 0.56, 0.75 },        // 4/3·1.33 = 1.7733 → 1.77; 0.75/1.33 = 0.5639 → 0.56
        { 800, 400, 0.67, 1, 0.5, 0.67, 1.01, 1.34 },  // 0.665 → 0.67 (Python), not 0.66
        { 200, 400, 1.99, 1, 2.0, 2.66, 0.75, 0.99 },  // 0.995 → 0.99 (Python), not 1.0
        { 40, 107, 1, 1, 2.67, 3.56, 0.28, 0.37 },     // 107/40 = 2.675 (stored below) → 2.67; 3.55775 → 3.56
    };

    [Theory]
    [MemberData(nameof(Ranges))]
    public void RecommendGivesTheBoundsRoundedAsTrlRoundsThem(
        long nD, long nU, double wD, double wU, double dMin, double dMax, double uMin, double uMax)
    {
        ClassImbalance.Ranges r = ClassImbalance.Recommend(nD, nU, wD, wU);
        Assert.Equal(new ClassImbalance.Ranges(dMin, dMax, uMin, uMax), r);
    }

    [Theory]
    [InlineData(800, 200, 1, 1, "(800 vs 200)", "desirable_weight in [0.25, 0.33]", "undesirable_weight in [3.01, 4.0]")]
    [InlineData(30, 70, 1, 1, "(30 vs 70)", "desirable_weight in [2.33, 3.1]", "undesirable_weight in [0.32, 0.43]")]
    [InlineData(3, 4, 1, 1, "(3 vs 4)", "desirable_weight in [1.33, 1.77]", "undesirable_weight in [0.56, 0.75]")]
    [InlineData(200, 400, 1.99, 1, "(200 vs 400)", "desirable_weight in [2.0, 2.66]", "undesirable_weight in [0.75, 0.99]")]
    public void MessageNamesBothCountsAndTheRangesAsPythonPrintsThem(
        long nD, long nU, double wD, double wU, string counts, string desirableRange, string undesirableRange)
    {
        string? message = ClassImbalance.Check(nD, nU, wD, wU);
        Assert.NotNull(message);
        Assert.Contains(counts, message, StringComparison.Ordinal);
        Assert.Contains(desirableRange, message, StringComparison.Ordinal);
        Assert.Contains(undesirableRange, message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheRuleAgreesWithTheRatioAwayFromRoundingEdges()
    {
        // Away from the rounded edges the rule is: warn iff w_D·n_D / (w_U·n_U) ∉ [1, 1.33]. With both bases
        // D = n_U·w_U/n_D and U = n_D·w_D/n_U at least 0.5, a 2% margin on the ratio exceeds the 0.005 rounding.
        var rng = new Random(8);
        int checkedCases = 0;
        for (int i = 0; i < 2000; i++)
        {
            long nD = rng.Next(1, 5000), nU = rng.Next(1, 5000);
            double wD = Math.Round(0.05 + rng.NextDouble() * 5, 2), wU = Math.Round(0.05 + rng.NextDouble() * 5, 2);
            if (nD == nU || (double)nU * wU / nD < 0.5 || (double)nD * wD / nU < 0.5) continue;
            checkedCases++;
            double ratio = wD * nD / (wU * nU);
            bool clearlyInside = ratio > 1.02 && ratio < 1.31;
            bool clearlyOutside = ratio < 0.98 || ratio > 1.35;
            string? message = ClassImbalance.Check(nD, nU, wD, wU);
            if (clearlyInside) Assert.Null(message);
            if (clearlyOutside) Assert.NotNull(message);
        }
        Assert.True(checkedCases > 500, $"only {checkedCases} cases checked");
    }

    [Theory]
    [InlineData(0.665, 0.67)]
    [InlineData(2.675, 2.67)]     // stored as 2.67499999999999982
    [InlineData(0.995, 0.99)]
    [InlineData(1.005, 1.0)]
    [InlineData(0.125, 0.12)]     // an exact tie: to even
    [InlineData(0.375, 0.38)]     // an exact tie: to even
    [InlineData(-2.675, -2.67)]
    [InlineData(0.3325, 0.33)]
    [InlineData(0.005, 0.01)]
    [InlineData(1e-300, 0.0)]
    [InlineData(4.0, 4.0)]
    [InlineData(123456.785, 123456.79)]
    [InlineData(6.015037593984962, 6.02)]
    public void RoundsToTwoDecimalsLikePython(double value, double expected)
    {
        Assert.Equal(expected, ClassImbalance.RoundHalfEven(value, 2));
    }
}

public class RecommendedWeightsTests
{
    [Theory]
    [InlineData(300, 700)]
    [InlineData(689, 1608)]
    [InlineData(800, 200)]
    [InlineData(1, 9)]
    [InlineData(51, 49)]
    public void RecommendedWeightsPassTheImbalanceRule(long desirable, long undesirable)
    {
        var (dw, uw) = ClassImbalance.RecommendedWeights(desirable, undesirable);
        Assert.Null(ClassImbalance.Check(desirable, undesirable, dw, uw));
        double ratio = dw * desirable / (uw * undesirable);
        Assert.InRange(ratio, 1.0, 4.0 / 3);
    }

    [Fact]
    public void HandComputedValues()
    {
        Assert.Equal((2.72, 1.0), ClassImbalance.RecommendedWeights(300, 700));   // 7/3 · 1.165 = 2.7183
        Assert.Equal((1.0, 3.5), ClassImbalance.RecommendedWeights(800, 200));    // 4 · (1/1.33 + 1)/2 = 3.5038
        Assert.Equal((1.0, 1.0), ClassImbalance.RecommendedWeights(5, 5));
    }
}
