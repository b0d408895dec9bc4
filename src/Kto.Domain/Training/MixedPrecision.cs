using System.Globalization;
using Kto.Domain.Model;
using Kto.Domain.Options;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// Hugging Face TrainingArguments' <c>bf16</c> / <c>fp16</c> with float32 master weights: the model being trained
/// (<c>masters</c>, float32: what the optimizer updates, what checkpoints and state transfer hold) has a copy in the
/// half dtype (<see cref="Compute"/>) that runs forward and backward. Each step: the loss is multiplied by
/// <see cref="LossScale"/> before backward; <see cref="GradsToMasters"/> turns the half gradients into float32 master
/// gradients (divided by the scale); <see cref="FinishStep"/> says whether the optimizer may step (fp16: not when a
/// gradient overflowed); after the optimizer step <see cref="MastersToCompute"/> casts the new weights back.
/// TorchSharp has no autocast, so this is the "O2" scheme (half model, float32 masters) rather than per-op casting;
/// RMSNorm, logits, log-softmax and the loss are computed in float32 either way.
/// </summary>
/// <remarks>
/// A LoRA model (<see cref="CausalLm.Lora"/>) has no copy: its frozen base is cast to the half dtype in place (the
/// base stays BF16 when it was stored so) while the adapters, the only trained weights, stay float32 and are cast on
/// the fly in forward (their gradients arrive in float32 through the cast); <see cref="Compute"/> is the model itself.
/// fp16's dynamic loss scaling follows torch.cuda.amp.GradScaler's defaults: initial scale 2¹⁶, halved on a step with
/// inf/NaN gradients (the step is skipped), doubled after 2000 steps in a row without.
/// </remarks>
public sealed class MixedPrecision : IDisposable
{
    /// <summary>GradScaler's init_scale.</summary>
    public const double InitialLossScale = 65536;

    /// <summary>GradScaler's growth_interval.</summary>
    public const int GrowthInterval = 2000;

    private readonly List<(TorchSharp.Modules.Parameter Master, TorchSharp.Modules.Parameter Compute)> _pairs;
    private readonly List<TorchSharp.Modules.Parameter> _trained;
    private readonly bool _scaled;
    private readonly bool _inPlace;
    private int _goodSteps;

    private MixedPrecision(CausalLm masters, ScalarType dtype)
    {
        Dtype = dtype;
        _scaled = dtype == ScalarType.Float16;
        LossScale = _scaled ? InitialLossScale : 1;
        _trained = [.. masters.parameters().Where(p => p.requires_grad)];
        if (masters.Lora is not null)
        {
            _inPlace = true;
            if (_trained.Any(p => p.dtype != ScalarType.Float32))
                throw new InvalidOperationException("LoRA in half precision: the adapters must be float32 (cast the base with CastBase before attaching them)");
            Compute = masters;
            _pairs = [];
            return;
        }
        Compute = masters.LmConfig.CreateModel();
        Compute.SourceDir = masters.SourceDir;
        Compute.to(masters.parameters().First().device);
        Compute.to(dtype);
        _pairs = [.. masters.parameters().Zip(Compute.parameters())];
        MastersToCompute();
    }

    /// <summary>
    /// Casts <paramref name="model"/>'s weights to <paramref name="config"/>'s half dtype in place, for a LoRA run whose
    /// adapters are attached afterwards (float32) on a frozen half-precision base; nothing for float32 runs.
    /// </summary>
    public static void CastBase(KtoConfig config, CausalLm model)
    {
        if (ComputeDtype(config) is { } dtype) model.to(dtype);
    }

    /// <summary>The half dtype the model computes in for <paramref name="config"/>, or null for float32.</summary>
    public static ScalarType? ComputeDtype(KtoConfig config) => config.Bf16 ? ScalarType.BFloat16 : config.Fp16 ? ScalarType.Float16 : null;

    /// <summary>Mixed precision for <paramref name="masters"/> as <paramref name="config"/> asks, or null (float32 training).</summary>
    public static MixedPrecision? For(KtoConfig config, CausalLm masters) => ComputeDtype(config) is { } dtype ? new MixedPrecision(masters, dtype) : null;

    /// <summary>bfloat16 or float16.</summary>
    public ScalarType Dtype { get; }

    /// <summary>The half-precision copy forward and backward run on (owned).</summary>
    public CausalLm Compute { get; }

    /// <summary>What the loss is multiplied by before backward: 1 for bf16, the dynamic scale for fp16.</summary>
    public double LossScale { get; private set; }

    /// <summary>Master gradient = compute gradient (cast to float32) / <see cref="LossScale"/>; the compute gradients are zeroed.</summary>
    public void GradsToMasters()
    {
        using var noGrad = no_grad();
        if (_inPlace)
        {
            if (LossScale != 1)
            {
                using Scalar lossScale = LossScale.ToScalar(); // held until the last gradient is unscaled (see Scalars)
                foreach (var p in _trained)
                    using (Tensor? g = p.grad) g?.div_(lossScale);
            }
            return;
        }
        using Scalar scale = LossScale.ToScalar();
        foreach (var (master, compute) in _pairs)
        {
            using Tensor? g = compute.grad;
            if (g is null) continue;
            using Tensor unscaled = g.to_type(ScalarType.Float32).div_(scale);
            using Tensor? mg = master.grad;
            if (mg is null) master.grad = unscaled.clone();
            else mg.copy_(unscaled);
            g.zero_();
        }
    }

    /// <summary>
    /// Whether the optimizer may step on the master gradients, updating the fp16 loss scale (halved after an overflow,
    /// doubled after <see cref="GrowthInterval"/> clean steps). Always true for bf16. Call once per step, on the
    /// gradients every replica holds (after the all-reduce), so all decide alike.
    /// </summary>
    public bool FinishStep()
    {
        if (!_scaled) return true;
        bool finite;
        using (no_grad())
        {
            finite = true;
            foreach (var master in _trained)
            {
                using Tensor? g = master.grad;
                if (g is not null && !g.isfinite().all().item<bool>())
                {
                    finite = false;
                    break;
                }
            }
        }
        if (!finite)
        {
            LossScale /= 2;
            _goodSteps = 0;
            return false;
        }
        if (++_goodSteps == GrowthInterval)
        {
            LossScale *= 2;
            _goodSteps = 0;
        }
        return true;
    }

    /// <summary>Casts the master weights into the compute copy (after an optimizer step or a restore); nothing for LoRA.</summary>
    public void MastersToCompute()
    {
        using var noGrad = no_grad();
        foreach (var (master, compute) in _pairs) compute.copy_(master);
    }

    /// <summary>The loss scaler's state, for checkpoints and state transfer (empty for bf16).</summary>
    public IReadOnlyDictionary<string, string> ScalerState() => _scaled
        ? new Dictionary<string, string>
        {
            [ScaleKey] = LossScale.ToString("R", CultureInfo.InvariantCulture),
            [GoodStepsKey] = _goodSteps.ToString(CultureInfo.InvariantCulture),
        }
        : new Dictionary<string, string>();

    /// <summary>Takes over a scaler state written by <see cref="ScalerState"/> (absent keys: the initial state).</summary>
    public void RestoreScalerState(IReadOnlyDictionary<string, string> metadata)
    {
        if (!_scaled) return;
        LossScale = metadata.TryGetValue(ScaleKey, out string? s) ? double.Parse(s, CultureInfo.InvariantCulture) : InitialLossScale;
        _goodSteps = metadata.TryGetValue(GoodStepsKey, out string? n) ? int.Parse(n, CultureInfo.InvariantCulture) : 0;
    }

    private const string ScaleKey = "loss_scale";
    private const string GoodStepsKey = "loss_scale_good_steps";

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_inPlace) Compute.Dispose();
    }
}
