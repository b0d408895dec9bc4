using Kto.Domain.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Loss;

/// <summary>
/// dL/dr three ways: central differences of the double reference, its closed form, and TorchSharp autograd
/// through <see cref="KtoLoss.Compute"/> on float64 tensors.
/// </summary>
public class KtoLossGradientTests
{
    private const double Step = 1e-5;

    /// <summary>Log-ratios r spanning the sigmoid's linear part and both saturated tails.</summary>
    private static readonly double[] Ratios = [-60, -7.5, -2, -0.4, 0, 0.3, 1.7, 5, 12, 80];

    public static TheoryData<KtoLossType, double, double, double, double> Settings()
    {
        var data = new TheoryData<KtoLossType, double, double, double, double>();
        foreach (KtoLossType type in new[] { KtoLossType.Kto, KtoLossType.ApoZeroUnpaired })
        {
            // β, kl, w_D, w_U
            data.Add(type, 0.1, 0.0, 1.0, 1.0);
            data.Add(type, 0.1, 0.25, 1.0, 1.0);
            data.Add(type, 0.01, 3.0, 1.0, 1.33);
            data.Add(type, 0.5, 1.2, 0.25, 1.0);
            data.Add(type, 1.0, 0.0, 2.5, 0.4);
            data.Add(type, 2.0, 0.7, 1.0, 3.0);
        }
        return data;
    }

    private static double CentralDifference(Func<double, double> f, double x, double h) => (f(x + h) - f(x - h)) / (2 * h);

    /// <summary>Tolerance for a central difference with step 1e-5: O(h²·f''') truncation plus O(ε/h) rounding.</summary>
    private static double Tolerance(double beta, double weight) => 1e-9 + 1e-9 * weight * beta * beta * beta;

    [Theory]
    [MemberData(nameof(Settings))]
    public void ClosedFormMatchesCentralDifferencesOfTheReference(KtoLossType type, double beta, double kl, double wD, double wU)
    {
        var o = new KtoLossOptions(beta, type, wD, wU);
        foreach (bool desirable in new[] { true, false })
        {
            double w = desirable ? wD : wU;
            foreach (double r in Ratios)
            {
                double fd = CentralDifference(x => KtoLossReference.Loss(x, desirable, kl, o), r, Step);
                double closed = KtoLossReference.LossGradient(r, desirable, kl, o);
                Assert.True(Math.Abs(fd - closed) <= Tolerance(beta, w),
                    $"{type} β={beta} kl={kl} desirable={desirable} r={r}: finite difference {fd:R} vs closed form {closed:R}");
                // Sign: raising r helps desirable examples and hurts undesirable ones.
                if (desirable) Assert.True(closed <= 0);
                else Assert.True(closed >= 0);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void AutogradOfTheMeanMatchesCentralDifferencesOfTheReferenceMean(KtoLossType type, double beta, double kl, double wD, double wU)
    {
        var o = new KtoLossOptions(beta, type, wD, wU);
        // Each r once as desirable and once as undesirable, in one batch.
        int n = Ratios.Length * 2;
        var rng = new Random(31);
        var policy = new double[n];
        var reference = new double[n];
        var labels = new bool[n];
        for (int i = 0; i < n; i++)
        {
            reference[i] = -20 - 100 * rng.NextDouble();
            policy[i] = reference[i] + Ratios[i / 2];
            labels[i] = i % 2 == 0;
        }

        using var scope = NewDisposeScope();
        Tensor p = tensor(policy, requires_grad: true);
        Tensor q = tensor(reference, requires_grad: true);
        Assert.Equal(ScalarType.Float64, p.dtype);
        KtoLossOutput result = KtoLoss.Compute(p, q, tensor(labels), kl, o);
        result.Losses.mean().backward();
        double[] autograd = p.grad!.data<double>().ToArray();

        for (int i = 0; i < n; i++)
        {
            double pi = policy[i];
            double fdMean = CentralDifference(x =>
            {
                double[] perturbed = (double[])policy.Clone();
                perturbed[i] = x;
                return KtoLossReference.MeanLoss(perturbed, reference, labels, kl, o);
            }, pi, Step);
            double r = policy[i] - reference[i];
            double fdExample = CentralDifference(x => KtoLossReference.Loss(x, labels[i], kl, o), r, Step);
            double w = labels[i] ? wD : wU;

            // d(mean)/dp_i = (1/B)·dL_i/dr_i.
            Assert.True(Math.Abs(autograd[i] - fdMean) <= Tolerance(beta, w) / n + 1e-10,
                $"{type} β={beta} kl={kl} i={i}: autograd {autograd[i]:R} vs finite difference of the mean {fdMean:R}");
            Assert.True(Math.Abs(autograd[i] - fdExample / n) <= Tolerance(beta, w) / n,
                $"{type} β={beta} kl={kl} i={i}: autograd {autograd[i]:R} vs finite difference / B {fdExample / n:R}");
            Assert.Equal(KtoLossReference.LossGradient(r, labels[i], kl, o) / n, autograd[i], 1e-14);
        }

        // The reference log-probs are detached inside the loss; the rewards carry no graph.
        Assert.True(q.grad is null || q.grad.abs().max().item<double>() == 0);
        Assert.False(result.Rewards.requires_grad);
    }

    [Fact]
    public void TheKlReferencePointReceivesNoGradient()
    {
        // kl is a plain double: moving it changes the loss, but the loss's gradient w.r.t. the policy is the
        // closed form with kl held fixed (the estimate is detached).
        var o = new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1);
        using var scope = NewDisposeScope();
        Tensor p = tensor(new[] { -10.0, -12.0 }, requires_grad: true);
        KtoLossOutput result = KtoLoss.Compute(p, tensor(new[] { -11.0, -11.0 }), tensor(new[] { true, false }), 0.25, o);
        result.Losses.sum().backward();
        double[] g = p.grad!.data<double>().ToArray();
        Assert.Equal(KtoLossReference.LossGradient(1.0, true, 0.25, o), g[0], 1e-15);
        Assert.Equal(KtoLossReference.LossGradient(-1.0, false, 0.25, o), g[1], 1e-15);
    }
}
