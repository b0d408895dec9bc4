using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// Scalar arguments of tensor operations with an explicit lifetime. A <see cref="Scalar"/> owns a native value that its
/// finalizer frees, and one converted implicitly from a .NET number (<c>x * 0.5</c>, <c>x + eps</c>, or the alpha of 1
/// that TorchSharp passes for <c>x + y</c>) is unreachable as soon as its handle has been read: a collection started by
/// another thread can then free it while the native kernel still reads it (upstream: dotnet/TorchSharp PR #1434). Every
/// Scalar here is either a static field (never collected, and safe to share between threads: a native scalar is
/// immutable) or held by <c>using</c> until the call has returned.
/// </summary>
/// <remarks>
/// Each helper passes TorchSharp the Scalars its implicit form creates, of the same value and type (an integer stays an
/// integer), so results are bit-identical to <c>a + b</c>, <c>t * d</c> and so on. <c>a - b</c> of two tensors needs no
/// helper: TorchSharp's <c>sub(Tensor)</c> takes no Scalar (libtorch supplies the alpha itself).
/// </remarks>
public static class Scalars
{
    /// <summary>The integer 1: the alpha of a plain add, as TorchSharp passes it.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>The integer 0: <c>arange</c>'s default start.</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary>The integer 2: the exponent of a square.</summary>
    public static readonly Scalar Two = 2.ToScalar();

    /// <summary><c>a + b</c>.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>t + value</c>.</summary>
    public static Tensor Plus(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.add(s, One);
    }

    /// <summary><c>t - value</c>.</summary>
    public static Tensor Minus(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.sub(s);
    }

    /// <summary><c>value - t</c>, formed as TorchSharp forms it: <c>(−t) + value</c>.</summary>
    public static Tensor SubtractedFrom(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.negative().add(s, One);
    }

    /// <summary><c>value - t</c> for an integer <paramref name="value"/> (e.g. <c>1 - p</c>), formed as <c>(−t) + value</c>.</summary>
    public static Tensor SubtractedFrom(this Tensor t, long value)
    {
        using Scalar s = value.ToScalar();
        return t.negative().add(s, One);
    }

    /// <summary><c>t * value</c>.</summary>
    public static Tensor Times(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.mul(s);
    }

    /// <summary><c>t / value</c>.</summary>
    public static Tensor DividedBy(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.div(s);
    }

    /// <summary><c>t / value</c> for an integer <paramref name="value"/>, rounded as <paramref name="rounding"/> says.</summary>
    public static Tensor DividedBy(this Tensor t, long value, RoundingMode rounding = RoundingMode.None)
    {
        using Scalar s = value.ToScalar();
        return t.div(s, rounding);
    }

    /// <summary><c>t ≥ value</c>, element-wise (a bool tensor).</summary>
    public static Tensor AtLeast(this Tensor t, double value)
    {
        using Scalar s = value.ToScalar();
        return t.ge(s);
    }

    /// <summary>A tensor of <paramref name="like"/>'s shape, dtype and device filled with <paramref name="value"/>.</summary>
    public static Tensor FullLike(Tensor like, double value)
    {
        using Scalar s = value.ToScalar();
        return full_like(like, s);
    }

    /// <summary><c>arange(stop)</c>: 0, 1, …, <paramref name="stop"/> − 1.</summary>
    public static Tensor Arange(long stop, ScalarType dtype, Device device)
    {
        using Scalar s = stop.ToScalar();
        return arange(Zero, s, One, dtype, device);
    }
}
