using Kto.Domain.Generation;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Generation;

public class TokenChooserTests
{
    /// <summary>Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1, shuffled over the vocabulary.</summary>
    private static readonly float[] Logits = [(float)Math.Log(0.15), (float)Math.Log(0.5), (float)Math.Log(0.05), (float)Math.Log(0.3)];

    private static Dictionary<int, int> Counts(SamplingOptions o, int draws = 20000)
    {
        var chooser = new TokenChooser(o, Logits.Length);
        var counts = new Dictionary<int, int>();
        for (int i = 0; i < draws; i++)
        {
            SplitMix64 rng = SampleStream.For(o.Seed, i, 0);
            int t = chooser.Choose(Logits, ref rng);
            counts[t] = counts.GetValueOrDefault(t) + 1;
        }
        return counts;
    }

    private static SamplingOptions Options(double temperature = 1, int topK = 0, double topP = 1) => new(1, temperature, topK, topP, 17);

    [Fact]
    public void PlainSamplingFollowsTheSoftmax()
    {
        var c = Counts(Options());
        double[] expected = [0.15, 0.5, 0.05, 0.3];
        for (int t = 0; t < 4; t++) Assert.InRange(c[t] / 20000.0, expected[t] - 0.015, expected[t] + 0.015);
    }

    [Fact]
    public void TopKKeepsTheKLikeliestRenormalised()
    {
        var c = Counts(Options(topK: 2));
        Assert.Equal([1, 3], c.Keys.Order());
        Assert.InRange(c[1] / 20000.0, 0.625 - 0.015, 0.625 + 0.015);
    }

    [Theory]
    [InlineData(0.5, new[] { 1 })]
    [InlineData(0.79, new[] { 1, 3 })]
    [InlineData(0.81, new[] { 0, 1, 3 })]
    [InlineData(0.99, new[] { 0, 1, 2, 3 })]
    public void TopPKeepsTheSmallestSetReachingP(double p, int[] kept)
    {
        Assert.Equal(kept, Counts(Options(topP: p), 4000).Keys.Order());
    }

    [Fact]
    public void TopKThenTopPAndTemperature()
    {
        // top-k 3 leaves 0.5, 0.3, 0.15 → renormalised 0.526, 0.316, 0.158; top-p 0.8 then needs the first two.
        Assert.Equal([1, 3], Counts(Options(topK: 3, topP: 0.8), 4000).Keys.Order());
        // A low temperature sharpens towards the best token.
        Assert.True(Counts(Options(temperature: 0.1), 2000)[1] > 1960);
    }

    [Fact]
    public void ArgMaxTakesTheFirstOfEqualLogits()
    {
        Assert.Equal(1, TokenChooser.ArgMax([0f, 2f, 2f, -1f]));
        Assert.Equal(0, TokenChooser.ArgMax([float.NaN, float.NaN]));
    }

    [Fact]
    public void TheNucleusOfALargeVocabularyIsFoundWithoutSortingEverything()
    {
        // 50 000 near-uniform logits with three standouts: the nucleus at 0.5 lies among the standouts only.
        var logits = new float[50000];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(i % 7) * 1e-3f;
        logits[123] = 12f;
        logits[40000] = 11.5f;
        logits[7] = 11f;
        var chooser = new TokenChooser(new SamplingOptions(1, 1, 0, 0.5, 0), logits.Length);
        var seen = new HashSet<int>();
        for (int i = 0; i < 300; i++)
        {
            SplitMix64 rng = SampleStream.For(0, i, 0);
            seen.Add(chooser.Choose(logits, ref rng));
        }
        Assert.Equal([123, 40000], seen.Order());
    }
}
