using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Kto.Domain.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kto.Domain.Cluster;

/// <summary>
/// Order-independent, exact sums for <c>full_determinism</c>: every slice's gradient is rounded onto a fixed-point grid
/// (per parameter tensor, units of 2^floor) and the units are added as integer-valued doubles, which is exact while
/// every partial sum stays below 2^53; so the sum of a step's slices is the same bits whoever computed which slice and
/// in whatever order the members' sums meet in the all-reduce. KL and metric sums use a fixed grid of 2^-24.
/// </summary>
/// <remarks>
/// The grid of each tensor comes from the previous step's reduced gradient (its largest element is put
/// <see cref="GrowthBits"/> bits below the largest value a slice may give), so it is the same on every member and
/// after any restart; a slice that exceeds it (the gradient grew by more than 2^8 in one step), and the first step,
/// make the step run again on a grid set from that attempt's largest elements. The largest element of a tensor keeps
/// 53 − ⌈log2 slices⌉ − 1 − 8 bits (44 with 16 slices); an element 2^-k of it keeps k bits fewer, and one below the
/// grid's unit becomes 0.
/// </remarks>
public sealed class ExactSum : IDisposable
{
    /// <summary>Bits in a double's significand: integers below 2^53 add exactly.</summary>
    public const int SignificandBits = 53;

    /// <summary>Headroom for a gradient that grows between steps before a step must run again.</summary>
    public const int GrowthBits = 8;

    /// <summary>The grid of KL and metric sums: 2^-24.</summary>
    public const int ScalarFloor = -24;

    private readonly Parameter[] _parameters;
    private readonly Tensor[] _units;
    private readonly int[] _floor;   // the grid of the held (committed) step: what checkpoints and state transfer keep
    private readonly int[] _pending; // the grid the current attempt uses and sets; becomes _floor on Commit
    private bool _pendingKnown;
    private readonly double[] _localMax;
    private readonly int _unitBits;
    private bool _overflow;

    /// <summary>Sums over <paramref name="slicesPerStep"/> slices of the gradients of <paramref name="parameters"/>.</summary>
    public ExactSum(IReadOnlyList<Parameter> parameters, int slicesPerStep)
    {
        if (slicesPerStep < 1) throw new ArgumentOutOfRangeException(nameof(slicesPerStep), slicesPerStep, "at least one slice");
        _parameters = [.. parameters];
        _units = [.. _parameters.Select(p => zeros(p.shape, ScalarType.Float64, p.device))];
        _floor = new int[_parameters.Length];
        _pending = new int[_parameters.Length];
        _localMax = new double[_parameters.Length];
        _unitBits = SignificandBits - 1 - CeilLog2(slicesPerStep);
        ScalarLimit = Math.ScaleB(1, _unitBits);
    }

    /// <summary>Whether the held grid was set from a gradient (false before the first step: that step runs twice).</summary>
    public bool WindowKnown { get; private set; }

    /// <summary>The largest |value| / 2^<see cref="ScalarFloor"/> a slice's KL or metric sum may have.</summary>
    public double ScalarLimit { get; }

    /// <summary>
    /// Starts an attempt of the next step from the committed grid (an attempt that was not committed leaves no trace).
    /// </summary>
    public void Begin()
    {
        _floor.CopyTo(_pending, 0);
        _pendingKnown = WindowKnown;
        Reset();
    }

    /// <summary>The step's attempt was committed and applied: its grid (set from its reduced gradient) is the held one.</summary>
    public void Commit()
    {
        _pending.CopyTo(_floor, 0);
        WindowKnown = _pendingKnown;
    }

    /// <summary>Starts (or restarts) an attempt's sums: zero sums, no overflow, no maxima.</summary>
    public void Reset()
    {
        using var noGrad = no_grad();
        foreach (Tensor u in _units) u.zero_();
        Array.Clear(_localMax);
        _overflow = false;
    }

    /// <summary>
    /// Rounds the parameters' current gradients (one slice's) onto the grid and adds them. The gradients are spent by
    /// it (the caller sets them to none before the next slice's backward, or <see cref="WriteGradients"/> replaces
    /// them). On the CPU one pass over each gradient does it all (<see cref="RoundAndAdd"/>); elsewhere tensor ops give
    /// the same bits.
    /// </summary>
    public void AddSlice()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        double[] m = new double[_parameters.Length];
        Tensor?[] maxima = new Tensor?[_parameters.Length];
        for (int i = 0; i < _parameters.Length; i++)
        {
            Tensor? g = _parameters[i].grad;
            if (g is null) continue;
            double scale = Math.ScaleB(1, -_pending[i]);
            if (IsHostFloat32(g) && IsHostFloat64(_units[i]))
            {
                m[i] = RoundAndAdd(Floats(g), Doubles(_units[i]), scale);
                continue;
            }
            var (lo, hi) = g.aminmax();
            maxima[i] = maximum(hi, lo.neg_()).to_type(ScalarType.Float64).cpu(); // max |g|, exact (a max, not a sum)
            // g × 2^-floor is exact in g's own dtype (a power of two), and so is rounding it to an integer (below 2^24 the
            // integer fits a float32's significand; above, the value is one already); the float64 accumulator then adds
            // it exactly. Round half to even.
            g.mul_(scale).round_();
            _units[i].add_(g);
        }
        for (int i = 0; i < m.Length; i++)
        {
            if (maxima[i] is { } t) m[i] = t.item<double>();
            _localMax[i] = Math.Max(_localMax[i], m[i]);
            if (!double.IsFinite(m[i]) || Math.ScaleB(m[i], -_pending[i]) >= ScalarLimit) _overflow = true;
        }
    }

    /// <summary>
    /// <paramref name="units"/>[j] += round(<paramref name="g"/>[j] × <paramref name="scale"/>), half to even, in one
    /// pass; the same bits as scaling and rounding in float32 and adding into float64 when <paramref name="scale"/> is a
    /// power of two (the products are exact in both). Lengths must match.
    /// </summary>
    /// <returns>The largest |g[j]|, or NaN if an element is not finite.</returns>
    public static double RoundAndAdd(ReadOnlySpan<float> g, Span<double> units, double scale)
    {
        if (g.Length != units.Length) throw new ArgumentException($"{g.Length} gradient elements for {units.Length} units");
        int j = 0;
        float max = 0, bad = 0; // bad: Σ g·0, 0 while every element is finite, NaN once one is not
        if (Vector256.IsHardwareAccelerated && g.Length >= Vector256<float>.Count)
        {
            ref float gr = ref MemoryMarshal.GetReference(g);
            ref double ur = ref MemoryMarshal.GetReference(units);
            Vector256<float> vmax = Vector256<float>.Zero, vbad = Vector256<float>.Zero;
            Vector256<double> vs = Vector256.Create(scale);
            for (; j <= g.Length - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                Vector256<float> x = Vector256.LoadUnsafe(ref gr, (nuint)j);
                vmax = Vector256.MaxNative(vmax, Vector256.Abs(x));
                vbad += x * Vector256<float>.Zero;
                (Vector256<double> lo, Vector256<double> hi) = Vector256.Widen(x);
                (Vector256.LoadUnsafe(ref ur, (nuint)j) + Vector256.Round(lo * vs)).StoreUnsafe(ref ur, (nuint)j);
                (Vector256.LoadUnsafe(ref ur, (nuint)(j + 4)) + Vector256.Round(hi * vs)).StoreUnsafe(ref ur, (nuint)(j + 4));
            }
            for (int k = 0; k < Vector256<float>.Count; k++)
            {
                max = Math.Max(max, vmax[k]);
                bad += vbad[k];
            }
        }
        for (; j < g.Length; j++)
        {
            float x = g[j];
            max = Math.Max(max, Math.Abs(x));
            bad += x * 0;
            units[j] += Math.Round(x * scale, MidpointRounding.ToEven);
        }
        return float.IsNaN(bad) ? double.NaN : max;
    }

    /// <summary>
    /// <paramref name="gradient"/>[j] = (float)(<paramref name="units"/>[j] × <paramref name="scale"/>), rounded to
    /// nearest even as a float64 → float32 cast is, in one pass.
    /// </summary>
    /// <returns>The largest |units[j] × scale| (in float64).</returns>
    public static double UnitsToGradient(ReadOnlySpan<double> units, Span<float> gradient, double scale)
    {
        if (gradient.Length != units.Length) throw new ArgumentException($"{units.Length} units for {gradient.Length} gradient elements");
        int j = 0;
        double max = 0;
        if (Vector256.IsHardwareAccelerated && units.Length >= Vector256<float>.Count)
        {
            ref double ur = ref MemoryMarshal.GetReference(units);
            ref float gr = ref MemoryMarshal.GetReference(gradient);
            Vector256<double> vmax = Vector256<double>.Zero, vs = Vector256.Create(scale);
            for (; j <= units.Length - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                Vector256<double> lo = Vector256.LoadUnsafe(ref ur, (nuint)j) * vs, hi = Vector256.LoadUnsafe(ref ur, (nuint)(j + 4)) * vs;
                vmax = Vector256.MaxNative(vmax, Vector256.MaxNative(Vector256.Abs(lo), Vector256.Abs(hi)));
                Vector256.Narrow(lo, hi).StoreUnsafe(ref gr, (nuint)j);
            }
            for (int k = 0; k < Vector256<double>.Count; k++) max = Math.Max(max, vmax[k]);
        }
        for (; j < units.Length; j++)
        {
            double v = units[j] * scale;
            max = Math.Max(max, Math.Abs(v));
            gradient[j] = (float)v;
        }
        return max;
    }

    private static bool IsHostFloat32(Tensor t) => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous();

    private static bool IsHostFloat64(Tensor t) => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float64 && t.is_contiguous();

    private static Span<float> Floats(Tensor t) => MemoryMarshal.Cast<byte, float>(t.bytes);

    private static Span<double> Doubles(Tensor t) => MemoryMarshal.Cast<byte, double>(t.bytes);

    /// <summary>Floats in <see cref="OverflowVector"/>: an overflow count and one block of maxima per member.</summary>
    public int OverflowVectorLength(int members) => 1 + members * _parameters.Length;

    /// <summary>
    /// This member's part of the overflow check, to be summed across members: [1 if a slice overflowed or the grid is
    /// not set, then zeros except this member's block of per-tensor maxima]. The sum gives every member the same maxima.
    /// </summary>
    public double[] OverflowVector(int rank, int members)
    {
        var v = new double[OverflowVectorLength(members)];
        v[0] = _overflow || !_pendingKnown ? 1 : 0;
        Array.Copy(_localMax, 0, v, 1 + rank * _parameters.Length, _parameters.Length);
        return v;
    }

    /// <summary>
    /// Reads a summed <see cref="OverflowVector"/>: false when the attempt stands; true when it must run again, the
    /// grid then set from the members' largest elements.
    /// </summary>
    /// <exception cref="InvalidDataException">A gradient is not finite (a step cannot be made exact).</exception>
    public bool MustRetry(double[] summed, int members)
    {
        if (summed[0] == 0) return false;
        for (int i = 0; i < _parameters.Length; i++)
        {
            double max = 0;
            for (int r = 0; r < members; r++) max = Math.Max(max, summed[1 + r * _parameters.Length + i]);
            if (!double.IsFinite(max)) throw new InvalidDataException($"full_determinism: the gradient of parameter {i} is not finite");
            SetFloor(i, max);
        }
        _pendingKnown = true;
        return true;
    }

    /// <summary>Elements in the flat buffer of units.</summary>
    public long Length => _parameters.Sum(p => p.numel());

    /// <summary>Copies this member's units into <paramref name="flat"/> (parameter order).</summary>
    public void CopyUnitsTo(double[] flat)
    {
        int offset = 0;
        foreach (Tensor u in _units)
        {
            int n = (int)u.numel();
            if (u.device_type == DeviceType.CPU) System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(u.bytes).CopyTo(flat.AsSpan(offset, n));
            else
                using (Tensor host = u.cpu()) System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(host.bytes).CopyTo(flat.AsSpan(offset, n));
            offset += n;
        }
    }

    /// <summary>
    /// Writes the summed units of <paramref name="flat"/> as float32 gradients (units × 2^floor, rounded to nearest)
    /// and sets each tensor's grid for the next step from its largest reduced element.
    /// </summary>
    public void WriteGradients(double[] flat)
    {
        using var noGrad = no_grad();
        int offset = 0;
        for (int i = 0; i < _parameters.Length; i++)
        {
            Parameter p = _parameters[i];
            int n = (int)p.numel();
            ReadOnlySpan<double> units = flat.AsSpan(offset, n);
            offset += n;
            double max, scale = Math.ScaleB(1, _pending[i]);
            if (p.device_type == DeviceType.CPU && p.dtype == ScalarType.Float32)
            {
                // Into the last slice's spent gradient when there is one (no new allocation), else a new tensor.
                using Tensor g = p.grad is { } spent && IsHostFloat32(spent) ? spent : empty(p.shape, ScalarType.Float32);
                max = UnitsToGradient(units, Floats(g), scale);
                p.grad = g; // the parameter holds its own reference
            }
            else
            {
                using Tensor host = empty(p.shape, ScalarType.Float64);
                MemoryMarshal.AsBytes(units).CopyTo(host.bytes);
                using Scalar s = scale.ToScalar();
                using Tensor value = host.mul_(s);
                using Tensor g = value.to_type(p.dtype).to(p.device);
                p.grad = g;
                var (lo, hi) = value.aminmax();
                max = Math.Max(hi.item<double>(), -lo.item<double>());
                lo.Dispose();
                hi.Dispose();
            }
            if (max > 0) SetFloor(i, max);
        }
        _pendingKnown = true;
    }

    /// <summary>A KL or metric value on the grid of 2^<see cref="ScalarFloor"/>, in units.</summary>
    /// <exception cref="InvalidDataException">The value is too large for an exact sum.</exception>
    public double ScalarUnits(double value, string what)
    {
        double units = Math.Round(Math.ScaleB(value, -ScalarFloor), MidpointRounding.ToEven);
        if (!(Math.Abs(units) < ScalarLimit))
            throw new InvalidDataException($"full_determinism: a slice's {what} ({value.ToString("G6", CultureInfo.InvariantCulture)}) is too large for an exact sum (limit {Math.ScaleB(ScalarLimit, ScalarFloor):G3})");
        return units;
    }

    /// <summary>Units back to a value.</summary>
    public static double ScalarValue(double units) => Math.ScaleB(units, ScalarFloor);

    /// <summary>The grid as checkpoint/state-transfer metadata (absent before the first step).</summary>
    public IReadOnlyDictionary<string, string> State() => WindowKnown
        ? new Dictionary<string, string> { [StateKey] = string.Join(",", _floor.Select(f => f.ToString(CultureInfo.InvariantCulture))) }
        : new Dictionary<string, string>();

    /// <summary>Takes over a grid written by <see cref="State"/> (absent: unknown, the next step runs twice).</summary>
    /// <exception cref="InvalidDataException">The grid has another number of tensors.</exception>
    public void RestoreState(IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(StateKey, out string? s))
        {
            WindowKnown = false;
            Array.Clear(_floor);
            Begin();
            return;
        }
        int[] floors = [.. s.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))];
        if (floors.Length != _floor.Length) throw new InvalidDataException($"the saved full_determinism grid has {floors.Length} tensors, this model {_floor.Length}");
        floors.CopyTo(_floor, 0);
        WindowKnown = true;
        Begin();
    }

    private const string StateKey = "exact_sum_floors";

    // 2^±100 keeps g × 2^-floor finite in float32 for any gradient below 2^27; a gradient below 2^-100 rounds to 0.
    private const int MinFloor = -100, MaxFloor = 100;

    private void SetFloor(int i, double max)
    {
        if (!(max > 0)) return; // no information: keep the grid
        // The largest element at 2^(unitBits − growth) units: floor = ⌈log2 max⌉ − (unitBits − growth).
        int exponent = (int)Math.Ceiling(Math.Log2(max));
        _pending[i] = Math.Clamp(exponent - (_unitBits - GrowthBits), MinFloor, MaxFloor);
    }

    private static int CeilLog2(int n) => n <= 1 ? 0 : 32 - (int)uint.LeadingZeroCount((uint)(n - 1));

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (Tensor u in _units) u.Dispose();
    }
}
