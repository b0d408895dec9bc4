using Kto.Domain.Loss;

namespace Kto.Domain.Tests.Loss;

/// <summary>
/// The KL estimate is a global sum / global count, clamped only at the end: any sharding of the pairs, added in any
/// grouping, gives the whole-batch estimate.
/// </summary>
public class KlPartialTests
{
    private const double Tolerance = 1e-12;

    private static (double[] Policy, double[] Reference) RandomPairs(Random rng, int n, double bias)
    {
        var policy = new double[n];
        var reference = new double[n];
        for (int i = 0; i < n; i++)
        {
            policy[i] = -5 - rng.NextDouble() * 200;
            reference[i] = policy[i] - bias - (rng.NextDouble() - 0.5) * 4;
        }
        return (policy, reference);
    }

    private static KlPartial Partial(double[] policy, double[] reference, int from, int to)
    {
        var p = KlPartial.Empty;
        for (int i = from; i < to; i++) p += new KlPartial(policy[i] - reference[i], 1);
        return p;
    }

    /// <summary>Adds the partials pairwise in a random order and grouping, as an all-reduce tree might.</summary>
    private static KlPartial RandomTreeSum(Random rng, List<KlPartial> parts)
    {
        var pool = new List<KlPartial>(parts);
        while (pool.Count > 1)
        {
            int a = rng.Next(pool.Count);
            KlPartial x = pool[a];
            pool.RemoveAt(a);
            int b = rng.Next(pool.Count);
            KlPartial y = pool[b];
            pool[b] = rng.Next(2) == 0 ? x + y : KlPartial.Add(y, x);
        }
        return pool.Count == 0 ? KlPartial.Empty : pool[0];
    }

    [Fact]
    public void AnyShardingAddsUpToTheWholeBatch()
    {
        var rng = new Random(2024);
        for (int trial = 0; trial < 300; trial++)
        {
            int n = rng.Next(1, 200);
            double bias = (rng.NextDouble() - 0.5) * 2;   // the raw estimate falls on either side of 0
            (double[] policy, double[] reference) = RandomPairs(rng, n, bias);
            KlPartial whole = Partial(policy, reference, 0, n);

            // Random cut points, empty shards allowed (a rank with no KL pairs).
            int shards = rng.Next(1, Math.Min(n, 16) + 2);
            int[] cuts = Enumerable.Range(0, shards - 1).Select(_ => rng.Next(0, n + 1)).Append(0).Append(n).Order().ToArray();
            var parts = new List<KlPartial>();
            for (int s = 0; s + 1 < cuts.Length; s++) parts.Add(Partial(policy, reference, cuts[s], cuts[s + 1]));
            KlPartial combined = RandomTreeSum(rng, parts);

            Assert.Equal(whole.Count, combined.Count);
            Assert.Equal(n, combined.Count);
            Assert.Equal(whole.Sum, combined.Sum, Tolerance);
            Assert.Equal(whole.Raw, combined.Raw, Tolerance);
            Assert.Equal(whole.Clamped, combined.Clamped, Tolerance);
            Assert.Equal(KtoLossReference.RawKl(policy, reference), combined.Raw, Tolerance);
            Assert.Equal(Math.Max(0, KtoLossReference.RawKl(policy, reference)), combined.Clamped, Tolerance);
        }
    }

    [Fact]
    public void GlobalMeanIsNotTheMeanOfShardMeans()
    {
        // Shard A: three pairs of +1; shard B: one pair of −1. Global (3 − 1) / 4 = 0.5; TRL's mean of
        // per-rank means would be (1 + (−1)) / 2 = 0.
        var a = new KlPartial(3, 3);
        var b = new KlPartial(-1, 1);
        Assert.Equal(0.5, (a + b).Raw, Tolerance);
        Assert.Equal(0.5, (a + b).Clamped, Tolerance);
        Assert.Equal(a + b, b + a);
    }

    [Fact]
    public void ANegativeEstimateClampsToZeroButRawStaysNegative()
    {
        double[] policy = [-10.3, -20.0, -15.0];
        double[] reference = [-10.0, -20.1, -14.9];   // differences −0.3, +0.1, −0.1
        KlPartial p = Partial(policy, reference, 0, 3);
        Assert.Equal(-0.1, p.Raw, Tolerance);
        Assert.Equal(0.0, p.Clamped);
        Assert.True(p.Raw < 0);
    }

    [Fact]
    public void ClampHappensAfterCombiningNotPerShard()
    {
        // One shard alone is positive (0.5), the other negative (−2): per-shard clamping would give
        // (0.5·2 + 0·2) / 4 = 0.25; the global estimate is (1 − 4) / 4 = −0.75, clamped to 0.
        var positive = new KlPartial(1.0, 2);
        var negative = new KlPartial(-4.0, 2);
        Assert.Equal(0.5, positive.Clamped, Tolerance);
        Assert.Equal(0.0, negative.Clamped);
        KlPartial both = positive + negative;
        Assert.Equal(-0.75, both.Raw, Tolerance);
        Assert.Equal(0.0, both.Clamped);
    }

    [Fact]
    public void EmptyIsTheIdentityAndReportsZero()
    {
        Assert.Equal(0, KlPartial.Empty.Count);
        Assert.Equal(0.0, KlPartial.Empty.Raw);
        Assert.Equal(0.0, KlPartial.Empty.Clamped);
        Assert.Equal(KlPartial.Empty, KlPartial.Empty + KlPartial.Empty);
        var p = new KlPartial(-2.5, 7);
        Assert.Equal(p, p + KlPartial.Empty);
        Assert.Equal(p, KlPartial.Add(KlPartial.Empty, p));
    }

    [Fact]
    public void PositiveEstimateIsUnchangedByTheClamp()
    {
        var p = new KlPartial(1.0, 4);
        Assert.Equal(0.25, p.Raw, Tolerance);
        Assert.Equal(p.Raw, p.Clamped);
    }
}
