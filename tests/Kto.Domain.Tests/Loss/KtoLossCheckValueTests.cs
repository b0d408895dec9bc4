using Kto.Domain.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Loss;

/// <summary>The check values of KTO-SEMANTICS.md, through both the tensor loss and the double reference.</summary>
public class KtoLossCheckValueTests
{
    [Theory]
    [InlineData(2.0, 0.12, 0.88)]
    [InlineData(1.0, 0.27, 0.73)]
    [InlineData(0.0, 0.50, 0.50)]
    [InlineData(-1.0, 0.73, 0.27)]
    [InlineData(-2.0, 0.88, 0.12)]
    public void SeedTableAtBetaOneAndZeroKl(double r, double desirable, double undesirable)
    {
        var o = new KtoLossOptions(1.0, KtoLossType.Kto, 1, 1);
        Assert.Equal(desirable, KtoLossReference.Loss(r, true, 0, o), 2);
        Assert.Equal(undesirable, KtoLossReference.Loss(r, false, 0, o), 2);

        using var scope = NewDisposeScope();
        var out_ = KtoLoss.Compute(tensor(new[] { r, r }), tensor(new[] { 0.0, 0.0 }), tensor(new[] { true, false }), 0, o);
        double[] losses = out_.Losses.data<double>().ToArray();
        Assert.Equal(desirable, losses[0], 2);
        Assert.Equal(undesirable, losses[1], 2);
    }

    [Fact]
    public void WorkedBatchFromTheSemanticsNote()
    {
        double[] policy = [-10, -12, -8, -15];
        double[] reference = [-11, -11, -9, -14];
        bool[] labels = [true, false, true, false];
        double[] policyKl = [-20, -18, -22, -19];
        double[] referenceKl = [-20.5, -18.2, -21.9, -19.4];
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1);

        double raw = KtoLossReference.RawKl(policyKl, referenceKl);
        Assert.Equal(0.25, raw, 12);
        var partial = new KlPartial(0, 0);
        for (int i = 0; i < 4; i++) partial += new KlPartial(policyKl[i] - referenceKl[i], 1);
        Assert.Equal(0.25, partial.Clamped, 12);

        double[] reflosses = KtoLossReference.Losses(policy, reference, labels, 0.25, o);
        Assert.Equal(0.4812588, reflosses[0], 7);
        Assert.Equal(0.4687906, reflosses[1], 7);
        Assert.Equal(0.4750247, reflosses.Average(), 7);

        using var scope = NewDisposeScope();
        var t = KtoLoss.Compute(tensor(policy), tensor(reference), tensor(labels), partial.Clamped, o);
        Assert.Equal(0.4750247, t.Losses.mean().item<double>(), 7);
        double[] rewards = t.Rewards.data<double>().ToArray();
        double chosen = (rewards[0] + rewards[2]) / 2, rejected = (rewards[1] + rewards[3]) / 2;
        Assert.Equal(0.1, chosen, 12);
        Assert.Equal(-0.1, rejected, 12);
        Assert.Equal(0.2, chosen - rejected, 12);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AtInitialisationEveryLossIsOneHalfAndTheGradientIsQuarterBeta(bool desirable)
    {
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1);
        using var scope = NewDisposeScope();
        var policy = tensor(new[] { -7.5 }, requires_grad: true);
        var result = KtoLoss.Compute(policy, tensor(new[] { -7.5 }), tensor(new[] { desirable }), 0, o);
        Assert.Equal(0.5, result.Losses.item<double>(), 12);
        result.Losses.sum().backward();
        Assert.Equal(desirable ? -0.025 : 0.025, policy.grad!.item<double>(), 12);
    }
}
