using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// GPT-2's "Conv1D": an affine map whose weight is stored (in, out) — transposed relative to
/// <c>nn.Linear</c> — exactly as Hugging Face stores it, so checkpoints load without transposes.
/// </summary>
/// <remarks>A LoRA adapter on it (PEFT's <c>fan_in_fan_out</c> case) has the same A (r, in) and B (out, r) as on a
/// linear layer; only the merged update is transposed.</remarks>
public sealed class Conv1D : AdaptableLayer
{
    // Named as registered, so Module.to (dtype or device) replaces these fields along with the parameters (by reflection: not readonly).
    [TorchSharp.Utils.ComponentName(Name = "weight")]
#pragma warning disable IDE0044 // Module.to assigns it by reflection
    private TorchSharp.Modules.Parameter _weight; // (in, out)
    [TorchSharp.Utils.ComponentName(Name = "bias")]
    private TorchSharp.Modules.Parameter _bias;   // (out)
#pragma warning restore IDE0044

    /// <summary>Creates the layer with zero weights; <see cref="GptLmHeadModel"/> initialises them.</summary>
    public Conv1D(long inFeatures, long outFeatures) : base(nameof(Conv1D))
    {
        _weight = nn.Parameter(zeros(inFeatures, outFeatures));
        _bias = nn.Parameter(zeros(outFeatures));
        register_parameter("weight", _weight);
        register_parameter("bias", _bias);
    }

    /// <summary>The (in, out) weight.</summary>
    public Tensor Weight => _weight;

    /// <inheritdoc />
    public override long InFeatures => _weight.shape[0];

    /// <inheritdoc />
    public override long OutFeatures => _weight.shape[1];

    /// <inheritdoc />
    protected override Tensor BaseWeight => _weight;

    /// <inheritdoc />
    public override Tensor MergedDelta()
    {
        var (a, b) = LoraWeights ?? throw new InvalidOperationException("no adapter");
        return b.matmul(a).Times(LoraScaling).t();
    }

    /// <inheritdoc />
    protected override Tensor BaseForward(Tensor x)
    {
        // x: (..., in) -> (..., out)
        long[] shape = x.shape;
        shape[^1] = _weight.shape[1];
        return torch.addmm(_bias, x.reshape(-1, x.shape[^1]), _weight, 1, 1).view(shape);
    }
}
