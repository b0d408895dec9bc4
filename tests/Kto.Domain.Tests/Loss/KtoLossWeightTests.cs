using Kto.Domain.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Loss;

/// <summary>
/// Class weights multiply each example's loss; the batch loss is the plain mean over examples, not divided by the
/// sum of weights. The numbers use σ(ln 3) = 3/4, so every loss below is a quarter-multiple worked out by hand.
/// </summary>
public class KtoLossWeightTests
{
    private static readonly double Ln3 = Math.Log(3);

    private static (double[] Losses, double Mean, double[] Rewards) Run(double[] r, bool[] desirable, double kl, KtoLossOptions o)
    {
        using var scope = NewDisposeScope();
        double[] reference = r.Select((_, i) => -10.0 * (i + 1)).ToArray();
        double[] policy = r.Select((x, i) => reference[i] + x).ToArray();
        KtoLossOutput t = KtoLoss.Compute(tensor(policy), tensor(reference), tensor(desirable), kl, o);
        double referenceMean = KtoLossReference.MeanLoss(policy, reference, desirable, kl, o);
        double mean = t.Losses.mean().item<double>();
        Assert.Equal(referenceMean, mean, 1e-12);
        return (t.Losses.data<double>().ToArray(), mean, t.Rewards.data<double>().ToArray());
    }

    [Fact]
    public void KtoWeightedMeanAtBetaOne()
    {
        // β = 1, kl = 0, r = ln 3: desirable 1 − σ(ln 3) = 1/4, undesirable 1 − σ(−ln 3) = 3/4.
        // w_D = 2, w_U = 0.5, labels [D, D, U]: [0.5, 0.5, 0.375]; mean 1.375 / 3 (the weight sum 4.5 would give 0.3056).
        var o = new KtoLossOptions(1.0, KtoLossType.Kto, 2.0, 0.5);
        var (losses, mean, _) = Run([Ln3, Ln3, Ln3], [true, true, false], 0, o);
        Assert.Equal(0.5, losses[0], 1e-12);
        Assert.Equal(0.5, losses[1], 1e-12);
        Assert.Equal(0.375, losses[2], 1e-12);
        Assert.Equal(1.375 / 3, mean, 1e-12);
        Assert.NotEqual(1.375 / 4.5, mean, 1e-3);
    }

    [Fact]
    public void ApoZeroUnpairedWeightedMean()
    {
        // β = 1, r = ln 3: desirable 1 − σ(ln 3) = 1/4, undesirable σ(ln 3) = 3/4.
        // w_D = 4, w_U = 2, labels [D, U, U, U]: [1, 1.5, 1.5, 1.5]; mean 5.5 / 4 = 1.375 (not 5.5 / 10 = 0.55).
        // kl = 7 is ignored by this loss.
        var o = new KtoLossOptions(1.0, KtoLossType.ApoZeroUnpaired, 4.0, 2.0);
        var (losses, mean, _) = Run([Ln3, Ln3, Ln3, Ln3], [true, false, false, false], 7, o);
        Assert.Equal(1.0, losses[0], 1e-12);
        for (int i = 1; i < 4; i++) Assert.Equal(1.5, losses[i], 1e-12);
        Assert.Equal(1.375, mean, 1e-12);
    }

    [Fact]
    public void KtoWeightedMeanWithAKlReferencePoint()
    {
        // β = 0.5, kl = 1. r = 1 + 2 ln 3 gives β(r − kl) = ln 3; r = 1 − 2 ln 3 gives −ln 3.
        //   r+: desirable 1/4, undesirable 1 − σ(−ln 3) = 3/4;  r−: desirable 3/4, undesirable 1 − σ(ln 3) = 1/4.
        // w_D = 3, w_U = 1, labels [D r+, U r+, D r−, U r−]: [0.75, 0.75, 2.25, 0.25]; mean 4 / 4 = 1 (weight sum: 0.5).
        var o = new KtoLossOptions(0.5, KtoLossType.Kto, 3.0, 1.0);
        double up = 1 + 2 * Ln3, down = 1 - 2 * Ln3;
        var (losses, mean, rewards) = Run([up, up, down, down], [true, false, true, false], 1.0, o);
        double[] expected = [0.75, 0.75, 2.25, 0.25];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], losses[i], 1e-12);
        Assert.Equal(1.0, mean, 1e-12);
        Assert.Equal(0.5 * up, rewards[0], 1e-12);
        Assert.Equal(0.5 * down, rewards[3], 1e-12);
    }

    [Fact]
    public void AZeroWeightStillCountsInTheDenominator()
    {
        // r = 0, kl = 0: both raw losses 1/2. w_U = 0: [0.5, 0]; mean 0.25, not 0.5.
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 1.0, 0.0);
        var (losses, mean, _) = Run([0, 0], [true, false], 0, o);
        Assert.Equal(0.5, losses[0], 1e-12);
        Assert.Equal(0.0, losses[1]);
        Assert.Equal(0.25, mean, 1e-12);
    }

    [Fact]
    public void WeightsScaleTheGradientAndTheMeanDividesByTheExampleCount()
    {
        // At initialisation dL_i/dr = ∓β/4 per unit weight; with B = 4, w_D = 2, w_U = 3, β = 0.1:
        // desirable −2·0.025/4 = −0.0125, undesirable +3·0.025/4 = 0.01875.
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 2.0, 3.0);
        using var scope = NewDisposeScope();
        double[] logps = [-5, -6, -7, -8];
        Tensor p = tensor(logps, requires_grad: true);
        KtoLossOutput t = KtoLoss.Compute(p, tensor(logps), tensor(new[] { true, false, true, false }), 0, o);
        Tensor loss = t.Losses.mean();
        Assert.Equal((2 * 0.5 + 3 * 0.5 + 2 * 0.5 + 3 * 0.5) / 4, loss.item<double>(), 1e-12);
        loss.backward();
        double[] grad = p.grad!.data<double>().ToArray();
        double[] expected = [-0.0125, 0.01875, -0.0125, 0.01875];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], grad[i], 1e-15);
    }

    [Fact]
    public void WeightsMultiplyEachLossAndLeaveRewardsAlone()
    {
        var rng = new Random(5);
        double[] r = Enumerable.Range(0, 9).Select(_ => (rng.NextDouble() - 0.5) * 20).ToArray();
        bool[] labels = Enumerable.Range(0, 9).Select(i => i % 3 != 0).ToArray();
        foreach (KtoLossType type in new[] { KtoLossType.Kto, KtoLossType.ApoZeroUnpaired })
        {
            var unit = Run(r, labels, 0.4, new KtoLossOptions(0.2, type, 1, 1));
            var weighted = Run(r, labels, 0.4, new KtoLossOptions(0.2, type, 7.0, 0.1));
            for (int i = 0; i < r.Length; i++)
            {
                Assert.Equal(unit.Losses[i] * (labels[i] ? 7.0 : 0.1), weighted.Losses[i], 1e-12);
                Assert.Equal(unit.Rewards[i], weighted.Rewards[i]);
            }
            Assert.Equal(weighted.Losses.Average(), weighted.Mean, 1e-12);
        }
    }

    [Fact]
    public void ShardsSumTheirLossesAndDivideByTheGlobalCount()
    {
        // A batch split across shards: Σ over shards of Σ losses, divided by the global example count, is the
        // whole-batch mean (the mean of shard means would not be, for unequal shards).
        var rng = new Random(11);
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 1.7, 0.6);
        double[] r = Enumerable.Range(0, 12).Select(_ => (rng.NextDouble() - 0.5) * 30).ToArray();
        bool[] labels = Enumerable.Range(0, 12).Select(_ => rng.Next(2) == 0).ToArray();
        double wholeMean = Run(r, labels, 0.8, o).Mean;
        int[] cuts = [0, 2, 9, 12];
        double sum = 0;
        double meanOfMeans = 0;
        for (int s = 0; s + 1 < cuts.Length; s++)
        {
            var shard = Run(r[cuts[s]..cuts[s + 1]], labels[cuts[s]..cuts[s + 1]], 0.8, o);
            sum += shard.Losses.Sum();
            meanOfMeans += shard.Mean / (cuts.Length - 1);
        }
        Assert.Equal(wholeMean, sum / r.Length, 1e-12);
        Assert.NotEqual(wholeMean, meanOfMeans, 1e-6);
    }
}
