using Kto.Domain.Generation;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Generation;

public class TokenChooserTests
{
    /// <summary>Probabilities 0.5, 0.3, 0.15, 0.05, shuffled over the vocabulary.</summary>
    private static readonly float[] Probs = [0.15f, 0.5f, 0.05f, 0.3f];

    private static Dictionary<int, int> Counts(SamplingOptions o, float[]? probs = null, int draws = 20000)
    {
        probs ??= Probs;
        var chooser = new TokenChooser(o, probs.Length);
        var counts = new Dictionary<int, int>();
        for (int i = 0; i < draws; i++)
        {
            SplitMix64 rng = SampleStream.For(o.Seed, i, 0);
            int t = chooser.Choose(probs, ref rng);
            counts[t] = counts.GetValueOrDefault(t) + 1;
        }
        return counts;
    }

    private static SamplingOptions Options(int topK = 0, double topP = 1) => new(1, 1.0, topK, topP, 17);

    [Fact]
    public void PlainSamplingFollowsTheProbabilities()
    {
        var c = Counts(Options());
        for (int t = 0; t < 4; t++) Assert.InRange(c[t] / 20000.0, Probs[t] - 0.015, Probs[t] + 0.015);
    }

    [Fact]
    public void TopKKeepsTheKLikeliestRenormalised()
    {
        var c = Counts(Options(topK: 2));
        Assert.Equal([1, 3], c.Keys.Order());
        Assert.InRange(c[1] / 20000.0, 0.625 - 0.015, 0.625 + 0.015);
        Assert.Equal([1], Counts(Options(topK: 1), draws: 500).Keys);
        Assert.Equal([0, 1, 2, 3], Counts(Options(topK: 4), draws: 4000).Keys.Order());
    }

    [Theory]
    [InlineData(1e-9, new[] { 1 })]
    [InlineData(0.49, new[] { 1 })]
    [InlineData(0.79, new[] { 1, 3 })]
    [InlineData(0.81, new[] { 0, 1, 3 })]
    [InlineData(0.99, new[] { 0, 1, 2, 3 })]
    public void TopPKeepsTheSmallestSetReachingP(double p, int[] kept)
    {
        Assert.Equal(kept, Counts(Options(topP: p), draws: 4000).Keys.Order());
    }

    [Fact]
    public void TopKComesBeforeTopP()
    {
        // top-k 3 leaves 0.5, 0.3, 0.15 → renormalised 0.526, 0.316, 0.158: top-p 0.8 then needs the first two,
        // while top-p 0.8 alone (0.5 + 0.3 of the full distribution) would sit on the edge.
        Assert.Equal([1, 3], Counts(Options(topK: 3, topP: 0.8), draws: 4000).Keys.Order());
        Assert.Equal([0, 1, 3], Counts(Options(topK: 3, topP: 0.85), draws: 4000).Keys.Order());
    }

    [Fact]
    public void EqualProbabilitiesAreCutByLowestId()
    {
        float[] flat = [0.1f, 0.2f, 0.2f, 0.2f, 0.2f, 0.1f];
        Assert.Equal([1, 2], Counts(Options(topK: 2), flat, 2000).Keys.Order());
        Assert.Equal([1, 2, 3], Counts(Options(topP: 0.5), flat, 2000).Keys.Order());
        Assert.Equal([1], Counts(Options(topP: 0.01), flat, 200).Keys.Order());
        Assert.Equal([0, 1, 2, 3, 4], Counts(Options(topK: 5), flat, 4000).Keys.Order());
    }

    [Fact]
    public void ZeroAndNaNProbabilitiesAreNeverDrawn()
    {
        float[] probs = [0f, 0.5f, float.NaN, 0.5f, 0f];
        Assert.Equal([1, 3], Counts(Options(), probs, 2000).Keys.Order());
        Assert.Equal([1, 3], Counts(Options(topK: 4), probs, 2000).Keys.Order());
    }

    [Fact]
    public void CutsOfALargeVocabularyMatchASortedReference()
    {
        var rng = new Random(3);
        var probs = new float[8000];
        for (int i = 0; i < probs.Length; i++) probs[i] = (float)Math.Exp(rng.NextDouble() * 4) * (i % 97 == 0 ? 50 : 1);
        float sum = probs.Sum();
        for (int i = 0; i < probs.Length; i++) probs[i] /= sum;
        int[] sorted = [.. Enumerable.Range(0, probs.Length).OrderByDescending(i => probs[i]).ThenBy(i => i)];

        foreach (var (topK, topP) in new[] { (40, 1.0), (0, 0.3), (500, 0.5) })
        {
            // The reference: sort, cut at k, then keep the shortest prefix reaching p of what is left.
            int[] kept = topK > 0 ? sorted[..topK] : sorted;
            double mass = kept.Sum(i => (double)probs[i]), acc = 0;
            int n = 0;
            while (n < kept.Length && (n == 0 || acc < topP * mass)) acc += probs[kept[n++]];
            var expected = kept[..n].ToHashSet();

            var seen = Counts(Options(topK, topP), probs, 1500).Keys;
            Assert.All(seen, t => Assert.Contains(t, expected));
            Assert.True(seen.Count > Math.Min(expected.Count, 1500) / 3, $"only {seen.Count} of {expected.Count} kept tokens drawn");
        }
    }
}
