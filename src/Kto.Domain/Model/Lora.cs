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

    /// <summary>The dropout probability on the adapter's input while training (0: none; TRL's <c>disable_dropout</c> sets it to 0).</summary>
    /// <exception cref="ArgumentException">Outside [0, 1).</exception>
    public double LoraDropout
    {
        get => _dropout;
        set => _dropout = value is >= 0 and < 1 ? value : throw new ArgumentException($"lora_dropout must be in [0, 1), got {value}", nameof(value));
    }

    /// <summary>The adapter's position among the model's adapters (it keys the layer's dropout masks).</summary>
    internal int AdapterIndex { get; set; }

    /// <summary>
    /// One seed per row of the next inputs (set by <see cref="LoraAdapters.DropoutSeeds"/>): the dropout mask of row b is
    /// drawn from its own generator seeded with (seed b, <see cref="AdapterIndex"/>), so an example's mask depends only
    /// on the example and the step, never on the other rows, the padding or the trainer that computes it. Null: the
    /// global generator.
    /// </summary>
    internal long[]? DropoutRowSeeds { get; set; }

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
        if (_a is null || !LoraEnabled) return BaseForward(x);
        using var scope = NewDisposeScope(); // frees the base output and the adapter's intermediates at once
        Tensor y = BaseForward(x);
        Tensor input = training && _dropout > 0 ? Dropout(x) : x;
        Tensor delta = nn.functional.linear(nn.functional.linear(input, _a.Weight.to_type(x.dtype)), _b!.Weight.to_type(x.dtype)).Times(_scaling);
        return y.Plus(delta).MoveToOuterDisposeScope();
    }

    /// <summary>Inverted dropout of (B, …) <paramref name="x"/>: kept entries scaled by 1/(1 − p), as nn.Dropout.</summary>
    private Tensor Dropout(Tensor x)
    {
        if (DropoutRowSeeds is not { } seeds) return nn.functional.dropout(x, _dropout, training: true);
        if (seeds.Length != x.shape[0]) throw new InvalidOperationException($"{seeds.Length} dropout seeds for a batch of {x.shape[0]} rows");
        long[] row = x.shape[1..];
        var keep = new Tensor[seeds.Length];
        for (int b = 0; b < seeds.Length; b++)
        {
            // Row-major draws: a right-padded row's real positions get the same values whatever the batch's length.
            using var g = new Generator((ulong)LoraDropoutSeeds.ForLayer(seeds[b], AdapterIndex), x.device);
            using Tensor u = torch.rand(row, ScalarType.Float32, x.device, generator: g);
            keep[b] = u.AtLeast(_dropout);
        }
        using Tensor mask = torch.stack(keep);
        foreach (Tensor k in keep) k.Dispose();
        return (x * mask.to_type(x.dtype)).Times(1 / (1 - _dropout));
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
        return b.matmul(a).Times(LoraScaling);
    }
}

/// <summary>
/// Seeds of LoRA's dropout masks. A run's masks are a pure function of (run seed, optimizer step, example index, pass,
/// adapter): a cluster step gives each example the mask <c>kto train</c> gives it, whoever computes it, and a resumed run
/// draws the masks the uninterrupted run drew. Mixing is SplitMix64's finaliser (Steele, Lea &amp; Flood 2014).
/// </summary>
public static class LoraDropoutSeeds
{
    /// <summary>The forward pass an example's row belongs to: its completion, or its KL pair's.</summary>
    public enum Pass
    {
        /// <summary>The example's (prompt, completion).</summary>
        Completion = 0,
        /// <summary>Its KL pair (prompt, mismatched completion).</summary>
        Kl = 1,
    }

    /// <summary>The row seed of example <paramref name="index"/> in optimizer step <paramref name="step"/> (0-based).</summary>
    public static long ForRow(long seed, int step, int index, Pass pass) =>
        (long)Mix(Mix(Mix((ulong)seed) ^ (ulong)step) ^ ((ulong)(uint)index << 1 | (ulong)pass));

    /// <summary>The generator seed of one adapter's mask for a row.</summary>
    public static long ForLayer(long rowSeed, int adapterIndex) => (long)Mix((ulong)rowSeed ^ (ulong)adapterIndex * 0x9E3779B97F4A7C15UL);

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
