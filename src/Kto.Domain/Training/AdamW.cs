using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// AdamW (decoupled weight decay), the same update as <c>torch.optim.AdamW</c> without amsgrad. Written out
/// rather than taken from TorchSharp so that its state (step count and both moments, keyed by parameter name)
/// can be saved next to the weights, restored bit-for-bit and shipped to a joining replica.
/// Following Hugging Face's Trainer, biases and layer-norm weights get no weight decay.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly (string Name, TorchSharp.Modules.Parameter Param, bool Decay)[] _params;
    private readonly Dictionary<string, (Tensor M, Tensor V)> _state = new(StringComparer.Ordinal);

    /// <summary>Creates the optimizer over <paramref name="named"/> parameters.</summary>
    public AdamW(IEnumerable<(string name, TorchSharp.Modules.Parameter parameter)> named, double beta1, double beta2, double epsilon, double weightDecay)
    {
        // Frozen parameters (a LoRA run's base weights) have no gradient and get no state.
        _params = named.Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter, !IsNoDecay(p.name))).ToArray();
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        foreach (var (name, p, _) in _params)
            _state[name] = (torch.zeros_like(p).requires_grad_(false), torch.zeros_like(p).requires_grad_(false));
    }

    /// <summary>β1.</summary>
    public double Beta1 { get; }
    /// <summary>β2.</summary>
    public double Beta2 { get; }
    /// <summary>ε.</summary>
    public double Epsilon { get; }
    /// <summary>Decoupled weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>Optimizer steps taken (bias corrections use it).</summary>
    public long StepCount { get; private set; }

    /// <summary>True for parameters that get no weight decay (biases, layer norms).</summary>
    public static bool IsNoDecay(string name) => name.EndsWith(".bias", StringComparison.Ordinal) || name.Contains("ln_", StringComparison.Ordinal);

    /// <summary>Applies one update with learning rate <paramref name="lr"/> from the parameters' current <c>.grad</c>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2 = 1 - Math.Pow(Beta2, StepCount);
        double stepSize = lr / bc1;
        double bc2Sqrt = Math.Sqrt(bc2);
        using var noGrad = torch.no_grad();
        // The step's coefficients as Scalars held until every parameter is updated (see Scalars).
        using Scalar decayFactor = (1 - lr * WeightDecay).ToScalar(), beta1 = Beta1.ToScalar(), gradWeight = (1 - Beta1).ToScalar(),
            beta2 = Beta2.ToScalar(), squareWeight = (1 - Beta2).ToScalar(), bc2Root = bc2Sqrt.ToScalar(), epsilon = Epsilon.ToScalar(),
            negativeStep = (-stepSize).ToScalar();
        foreach (var (name, p, decay) in _params)
        {
            Tensor? g = p.grad;
            if (g is null) continue;
            using var scope = torch.NewDisposeScope();
            var (m, v) = _state[name];
            if (decay && WeightDecay != 0) p.mul_(decayFactor);
            m.mul_(beta1).add_(g, alpha: gradWeight);
            v.mul_(beta2).addcmul_(g, g, value: squareWeight);
            Tensor denom = v.sqrt().div_(bc2Root).add_(epsilon, Scalars.One);
            p.addcdiv_(m, denom, value: negativeStep);
        }
    }

    /// <summary>Sets every gradient to zero (keeps the buffers).</summary>
    public void ZeroGrad()
    {
        foreach (var (_, p, _) in _params) p.grad?.zero_();
    }

    /// <summary>The moments as named tensors (<c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c>), sharing storage.</summary>
    public Dictionary<string, Tensor> StateTensors()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, (m, v)) in _state)
        {
            d["exp_avg." + name] = m;
            d["exp_avg_sq." + name] = v;
        }
        return d;
    }

    /// <summary>Restores the step count and moments saved by <see cref="StateTensors"/>.</summary>
    public void LoadState(long stepCount, IReadOnlyDictionary<string, Tensor> tensors)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, (m, v)) in _state)
        {
            if (!tensors.TryGetValue("exp_avg." + name, out Tensor? sm) || !tensors.TryGetValue("exp_avg_sq." + name, out Tensor? sv))
                throw new InvalidDataException($"optimizer state for \"{name}\" missing");
            m.copy_(sm);
            v.copy_(sv);
        }
        StepCount = stepCount;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (m, v) in _state.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        _state.Clear();
    }
}
