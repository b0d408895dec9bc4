using Kto.Domain.Loss;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Loss;

/// <summary>
/// The TorchSharp loss against the independent double-precision reference on a few hundred seeded random batches:
/// per-example losses, the mean and the rewards β·r, in float64 (1e-12) and float32 (~1e-5).
/// </summary>
public class KtoLossReferenceAgreementTests
{
    private const int Cases = 300;

    private sealed record Case(double[] Policy, double[] Reference, bool[] Desirable, double Kl, KtoLossOptions Options);

    private static IEnumerable<Case> RandomCases(int seed)
    {
        var rng = new Random(seed);
        for (int c = 0; c < Cases; c++)
        {
            int b = 1 + c % 17;                                        // every batch size 1..17, many times
            var type = rng.Next(2) == 0 ? KtoLossType.Kto : KtoLossType.ApoZeroUnpaired;
            double beta = Math.Exp(Math.Log(0.01) + rng.NextDouble() * Math.Log(300.0)); // 0.01 … 3, log-uniform
            double wD = 0.05 + rng.NextDouble() * 3;
            double wU = 0.05 + rng.NextDouble() * 3;
            double kl = rng.Next(5) == 0 ? 0 : rng.NextDouble() * 10;  // kl ≥ 0, exactly 0 now and then
            double spread = rng.Next(4) == 0 ? 0.5 : 15;              // log-ratios near 0 or far from it
            var policy = new double[b];
            var reference = new double[b];
            var desirable = new bool[b];
            int mode = c % 5;                                          // 0: all desirable, 1: all undesirable, else mixed
            for (int i = 0; i < b; i++)
            {
                reference[i] = -1 - rng.NextDouble() * 300;
                policy[i] = reference[i] + (rng.NextDouble() * 2 - 1) * spread;
                desirable[i] = mode switch { 0 => true, 1 => false, _ => rng.Next(2) == 0 };
            }
            yield return new Case(policy, reference, desirable, kl, new KtoLossOptions(beta, type, wD, wU));
        }
    }

    private static void AssertClose(double expected, double actual, double tolerance, string what)
    {
        Assert.False(double.IsNaN(actual), $"{what}: NaN");
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected:R}, got {actual:R}");
    }

    [Fact]
    public void Float64TensorsAgreeWithTheReferenceTo1e12()
    {
        int oneClass = 0;
        foreach (Case k in RandomCases(seed: 1234))
        {
            using var scope = NewDisposeScope();
            KtoLossOutput t = KtoLoss.Compute(tensor(k.Policy), tensor(k.Reference), tensor(k.Desirable), k.Kl, k.Options);
            Assert.Equal(ScalarType.Float64, t.Losses.dtype);
            double[] losses = t.Losses.data<double>().ToArray();
            double[] rewards = t.Rewards.data<double>().ToArray();
            double mean = t.Losses.mean().item<double>();

            double[] expected = KtoLossReference.Losses(k.Policy, k.Reference, k.Desirable, k.Kl, k.Options);
            Assert.Equal(k.Policy.Length, losses.Length);
            for (int i = 0; i < losses.Length; i++)
            {
                AssertClose(expected[i], losses[i], 1e-12, $"loss[{i}] of {k.Options}");
                AssertClose(k.Options.Beta * (k.Policy[i] - k.Reference[i]), rewards[i], 1e-12, $"reward[{i}]");
            }
            AssertClose(KtoLossReference.MeanLoss(k.Policy, k.Reference, k.Desirable, k.Kl, k.Options), mean, 1e-12, "mean");
            if (k.Desirable.All(d => d) || k.Desirable.All(d => !d)) oneClass++;
        }
        Assert.True(oneClass >= Cases * 2 / 5, $"only {oneClass} one-class batches");
    }

    [Fact]
    public void Float32TensorsAgreeWithTheReferenceTo1e5()
    {
        foreach (Case k in RandomCases(seed: 99))
        {
            // The reference sees the same float32-rounded inputs, so only float32 arithmetic is being measured.
            float[] policy32 = k.Policy.Select(x => (float)x).ToArray();
            float[] reference32 = k.Reference.Select(x => (float)x).ToArray();
            double[] policy = policy32.Select(x => (double)x).ToArray();
            double[] reference = reference32.Select(x => (double)x).ToArray();

            using var scope = NewDisposeScope();
            KtoLossOutput t = KtoLoss.Compute(tensor(policy32), tensor(reference32), tensor(k.Desirable), k.Kl, k.Options);
            Assert.Equal(ScalarType.Float32, t.Losses.dtype);
            Assert.Equal(ScalarType.Float32, t.Rewards.dtype);
            float[] losses = t.Losses.data<float>().ToArray();
            float[] rewards = t.Rewards.data<float>().ToArray();
            double mean = t.Losses.mean().item<float>();

            double[] expected = KtoLossReference.Losses(policy, reference, k.Desirable, k.Kl, k.Options);
            for (int i = 0; i < losses.Length; i++)
            {
                AssertClose(expected[i], losses[i], 1e-5, $"float32 loss[{i}] of {k.Options}");
                double reward = k.Options.Beta * (policy[i] - reference[i]);
                AssertClose(reward, rewards[i], 1e-5 * Math.Max(1, Math.Abs(reward)), $"float32 reward[{i}]");
            }
            AssertClose(KtoLossReference.MeanLoss(policy, reference, k.Desirable, k.Kl, k.Options), mean, 1e-5, "float32 mean");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OneClassBatchesGiveFiniteLossesAndGradients(bool desirable)
    {
        foreach (KtoLossType type in new[] { KtoLossType.Kto, KtoLossType.ApoZeroUnpaired })
        {
            foreach (int b in new[] { 1, 2, 7, 16 })
            {
                using var scope = NewDisposeScope();
                var o = new KtoLossOptions(0.1, type, 1.5, 0.5);
                Tensor p = tensor(Enumerable.Range(0, b).Select(i => -10.0 - i).ToArray(), requires_grad: true);
                Tensor q = tensor(Enumerable.Range(0, b).Select(i => -9.0 - 2 * i).ToArray());
                KtoLossOutput t = KtoLoss.Compute(p, q, tensor(Enumerable.Repeat(desirable, b).ToArray()), 0.3, o);
                Tensor loss = t.Losses.mean();
                loss.backward();
                Assert.True(double.IsFinite(loss.item<double>()));
                Assert.All(p.grad!.data<double>().ToArray(), g => Assert.True(double.IsFinite(g)));
                Assert.All(t.Rewards.data<double>().ToArray(), r => Assert.True(double.IsFinite(r)));
            }
        }
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Float32)]
    public void SaturatedSigmoidsGiveNoNaN(ScalarType dtype)
    {
        // |β(r − kl)| up to ~1e4: every loss is 0 or its class weight, never NaN.
        double[] r = [-5000, -800, -100, 100, 800, 5000];
        foreach (KtoLossType type in new[] { KtoLossType.Kto, KtoLossType.ApoZeroUnpaired })
        {
            foreach (bool desirable in new[] { true, false })
            {
                using var scope = NewDisposeScope();
                var o = new KtoLossOptions(2.0, type, 2.0, 3.0);
                Tensor p = tensor(r).to_type(dtype).requires_grad_(true);
                Tensor q = zeros(r.Length, dtype: dtype);
                KtoLossOutput t = KtoLoss.Compute(p, q, tensor(Enumerable.Repeat(desirable, r.Length).ToArray()), 5.0, o);
                t.Losses.mean().backward();
                double[] losses = t.Losses.to_type(ScalarType.Float64).data<double>().ToArray();
                double[] grads = p.grad!.to_type(ScalarType.Float64).data<double>().ToArray();
                double[] expected = r.Select(x => KtoLossReference.Loss(x, desirable, 5.0, o)).ToArray();
                for (int i = 0; i < r.Length; i++)
                {
                    Assert.True(double.IsFinite(losses[i]) && double.IsFinite(grads[i]), $"{type} {desirable} r={r[i]}");
                    Assert.Equal(expected[i], losses[i], 1e-6);
                }
            }
        }
    }
}
