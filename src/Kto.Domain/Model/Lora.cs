using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>One matrix of a LoRA pair, as PEFT holds it: a bias-free linear map whose only parameter is <c>weight</c>.</summary>
public sealed class LoraMatrix : nn.Module
{
#pragma warning disable IDE0044 // Module.to assigns it by reflection
    [TorchSharp.Utils.ComponentName(Name = "weight")]
    private Parameter _weight;
#pragma warning restore IDE0044

    /// <summary>A zero (<paramref name="rows"/>, <paramref name="columns"/>) weight.</summary>
    public LoraMatrix(long rows, long columns) : base(nameof(LoraMatrix))
    {
        _weight = new Parameter(zeros(rows, columns));
        register_parameter("weight", _weight);
    }

    /// <summary>The weight.</summary>
    public Parameter Weight => _weight;
}

/// <summary>
/// A linear map of the model (<c>nn.Linear</c>-shaped <see cref="LinearLayer"/> or GPT-2's <see cref="Conv1D"/>) that
/// can carry a LoRA adapter as PEFT's <c>LoraLayer</c> does: <c>y = base(x) + scaling · B(A(dropout(x)))</c> with
/// <c>lora_A.weight</c> (r, in) and <c>lora_B.weight</c> (out, r) registered under the layer, so their names are PEFT's
/// (<c>…q_proj.lora_A.weight</c>). <c>scaling = lora_alpha / r</c>, or <c>lora_alpha / √r</c> with rsLoRA.
/// </summary>
public abstract class AdaptableLayer : nn.Module<Tensor, Tensor>
{
    private LoraMatrix? _a, _b;
    private double _scaling;
    private double _dropout;

    /// <summary>Names the module.</summary>
    protected AdaptableLayer(string name) : base(name)
    {
    }

    /// <summary>Input features.</summary>
    public abstract long InFeatures { get; }

    /// <summary>Output features.</summary>
    public abstract long OutFeatures { get; }

    /// <summary>Whether an adapter is attached.</summary>
    public bool HasLora => _a is not null;

    /// <summary>Whether the adapter takes part in forward (false: the base layer alone, exactly).</summary>
    public bool LoraEnabled { get; set; } = true;

    /// <summary>The adapter's matrices (A: (r, in), B: (out, r)), or null.</summary>
    public (Parameter A, Parameter B)? LoraWeights => _a is null ? null : (_a.Weight, _b!.Weight);

    /// <summary>scaling = lora_alpha / r (or / √r with rsLoRA).</summary>
    public double LoraScaling => _scaling;

    /// <summary>
    /// Attaches an adapter of rank <paramref name="r"/> initialised as PEFT's default (<c>init_lora_weights=True</c>):
    /// A Kaiming-uniform with a = √5 (bound 1/√in), B zeros, so the layer computes exactly its base map at first.
    /// </summary>
    /// <exception cref="ArgumentException">r ≤ 0, alpha ≤ 0, or dropout outside [0, 1).</exception>
    public void AddLora(int r, double alpha, double dropout, bool rsLora, Generator? generator = null)
    {
        if (r <= 0) throw new ArgumentException($"lora_r must be positive, got {r}", nameof(r));
        if (alpha <= 0) throw new ArgumentException($"lora_alpha must be positive, got {alpha}", nameof(alpha));
        if (dropout is < 0 or >= 1) throw new ArgumentException($"lora_dropout must be in [0, 1), got {dropout}", nameof(dropout));
        if (_a is not null) throw new InvalidOperationException("the layer has an adapter already");
        _a = new LoraMatrix(r, InFeatures);
        _b = new LoraMatrix(OutFeatures, r);
        Device device = BaseWeight.device;
        _a.to(device);
        _b.to(device);
        using (no_grad())
        {
            double bound = 1 / Math.Sqrt(InFeatures); // kaiming_uniform_(a=√5): gain √(2/(1+5)), bound = gain·√(3/fan_in)
            _a.Weight.uniform_(-bound, bound, generator);
        }
        register_module("lora_A", _a);
        register_module("lora_B", _b);
        _scaling = rsLora ? alpha / Math.Sqrt(r) : alpha / r;
        _dropout = dropout;
    }

    /// <summary>The base weight (its layout is the subclass's).</summary>
    protected abstract Tensor BaseWeight { get; }

    /// <summary>The base map alone.</summary>
    protected abstract Tensor BaseForward(Tensor x);

    /// <summary>(…, in) → (…, out): the base map plus the adapter's update when attached and enabled.</summary>
    public override Tensor forward(Tensor x)
    {
        Tensor y = BaseForward(x);
        if (_a is null || !LoraEnabled) return y;
        using var scope = NewDisposeScope();
        Tensor input = training && _dropout > 0 ? nn.functional.dropout(x, _dropout, training: true) : x;
        Tensor delta = nn.functional.linear(nn.functional.linear(input, _a.Weight.to_type(x.dtype)), _b!.Weight.to_type(x.dtype)) * _scaling;
        return (y + delta).MoveToOuterDisposeScope();
    }

    /// <summary>The adapter's update of the weight in the base layout, scaling · B·A (out, in), transposed for Conv1D.</summary>
    public abstract Tensor MergedDelta();
}

/// <summary><c>nn.Linear</c> with weight (out, in) and optional bias, under the same names, that can carry a LoRA adapter.</summary>
public sealed class LinearLayer : AdaptableLayer
{
#pragma warning disable IDE0044 // Module.to assigns them by reflection
    [TorchSharp.Utils.ComponentName(Name = "weight")]
    private Parameter _weight;
    [TorchSharp.Utils.ComponentName(Name = "bias")]
    private Parameter? _bias;
#pragma warning restore IDE0044

    /// <summary>A zero layer (the model initialises it).</summary>
    public LinearLayer(long inFeatures, long outFeatures, bool hasBias) : base(nameof(LinearLayer))
    {
        _weight = new Parameter(zeros(outFeatures, inFeatures));
        register_parameter("weight", _weight);
        if (hasBias)
        {
            _bias = new Parameter(zeros(outFeatures));
            register_parameter("bias", _bias);
        }
    }

    /// <inheritdoc />
    public override long InFeatures => _weight.shape[1];

    /// <inheritdoc />
    public override long OutFeatures => _weight.shape[0];

    /// <inheritdoc />
    protected override Tensor BaseWeight => _weight;

    /// <inheritdoc />
    protected override Tensor BaseForward(Tensor x) => nn.functional.linear(x, _weight, _bias);

    /// <inheritdoc />
    public override Tensor MergedDelta()
    {
        var (a, b) = LoraWeights ?? throw new InvalidOperationException("no adapter");
        return b.matmul(a) * LoraScaling;
    }
}
