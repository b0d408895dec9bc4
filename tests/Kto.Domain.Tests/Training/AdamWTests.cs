using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Training;

public class AdamWTests
{
    /// <summary>Our AdamW against a scalar double-precision transcription of torch.optim.AdamW's update.</summary>
    [Fact]
    public void MatchesTheAdamWUpdateRule()
    {
        double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
        double[] grads = [0.5, -1.0, 0.25, 2.0];
        using var p = new TorchSharp.Modules.Parameter(tensor(new[] { 1.0 }));
        using var opt = new AdamW([("w.weight", p)], b1, b2, eps, wd);
        double w = 1.0, m = 0, v = 0;
        for (int t = 1; t <= grads.Length; t++)
        {
            p.grad = tensor(new[] { grads[t - 1] });
            opt.Step(lr);
            w *= 1 - lr * wd;
            m = b1 * m + (1 - b1) * grads[t - 1];
            v = b2 * v + (1 - b2) * grads[t - 1] * grads[t - 1];
            double mHat = m / (1 - Math.Pow(b1, t)), denom = Math.Sqrt(v) / Math.Sqrt(1 - Math.Pow(b2, t)) + eps;
            w -= lr * mHat / denom; // torch: p -= (lr / bc1) · m / denom
            Assert.Equal(w, p.item<double>(), 12);
        }
    }

    [Fact]
    public void BiasesAndLayerNormsGetNoWeightDecay()
    {
        Assert.True(AdamW.IsNoDecay("transformer.h.0.attn.c_attn.bias"));
        Assert.True(AdamW.IsNoDecay("transformer.h.0.ln_1.weight"));
        Assert.True(AdamW.IsNoDecay("transformer.ln_f.weight"));
        Assert.False(AdamW.IsNoDecay("transformer.h.0.mlp.c_fc.weight"));
        Assert.False(AdamW.IsNoDecay("transformer.wte.weight"));
    }

    [Fact]
    public void StateRoundTripsAndContinuesIdentically()
    {
        using var a = new TorchSharp.Modules.Parameter(tensor(new[] { 1.0, 2.0 }));
        using var b = new TorchSharp.Modules.Parameter(tensor(new[] { 1.0, 2.0 }));
        using var oa = new AdamW([("x", a)], 0.9, 0.999, 1e-8, 0);
        using var ob = new AdamW([("x", b)], 0.9, 0.999, 1e-8, 0);
        a.grad = tensor(new[] { 0.3, -0.7 });
        oa.Step(0.1);
        using (no_grad()) b.copy_(a);
        ob.LoadState(oa.StepCount, oa.StateTensors());
        a.grad = tensor(new[] { -0.2, 0.4 });
        b.grad = tensor(new[] { -0.2, 0.4 });
        oa.Step(0.1);
        ob.Step(0.1);
        Assert.Equal(a.data<double>().ToArray(), b.data<double>().ToArray());
    }
}
