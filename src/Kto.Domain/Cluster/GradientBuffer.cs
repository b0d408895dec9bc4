using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Cluster;

/// <summary>
/// Moves TorchSharp gradients in and out of one flat float buffer, parameter after parameter in the order given
/// (every replica must pass the same parameters in the same order, e.g. <c>model.parameters()</c>), so a whole
/// model's gradient travels as one all-reduce rather than one message per parameter.
/// </summary>
public static class GradientBuffer
{
    /// <summary>Elements the buffer needs for <paramref name="ps"/>: the sum of their element counts.</summary>
    /// <exception cref="ArgumentException">The parameters hold more than <see cref="Array.MaxLength"/> elements.</exception>
    public static int Length(IEnumerable<TorchSharp.Modules.Parameter> ps)
    {
        ArgumentNullException.ThrowIfNull(ps);
        long total = 0;
        foreach (TorchSharp.Modules.Parameter p in ps) total += p.numel();
        if (total > Array.MaxLength) throw new ArgumentException($"{total} gradient elements do not fit one buffer", nameof(ps));
        return (int)total;
    }

    /// <summary>Copies every parameter's <c>.grad</c> into <paramref name="buffer"/>; a missing gradient becomes zeros.</summary>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is shorter than <see cref="Length"/>.</exception>
    public static void CopyGradientsTo(IEnumerable<TorchSharp.Modules.Parameter> ps, float[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        int offset = 0;
        using DisposeScope scope = torch.NewDisposeScope();
        foreach (TorchSharp.Modules.Parameter p in ps)
        {
            Span<float> target = Slice(buffer, offset, p);
            Tensor? grad = p.grad;
            if (grad is null) target.Clear();
            else if (IsDirect(grad)) MemoryMarshal.Cast<byte, float>(grad.bytes).CopyTo(target);
            else MemoryMarshal.Cast<byte, float>(grad.detach().to(ScalarType.Float32, CPU).contiguous().bytes).CopyTo(target);
            offset += target.Length;
        }
    }

    /// <summary>
    /// Writes <paramref name="buffer"/> into every parameter's <c>.grad</c> (created as zeros of the parameter's
    /// shape, dtype and device where missing), in the layout <see cref="CopyGradientsTo"/> produced.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is shorter than <see cref="Length"/>.</exception>
    public static void CopyGradientsFrom(float[] buffer, IEnumerable<TorchSharp.Modules.Parameter> ps)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        int offset = 0;
        using DisposeScope scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (TorchSharp.Modules.Parameter p in ps)
        {
            Span<float> source = Slice(buffer, offset, p);
            Tensor? grad = p.grad;
            if (grad is null)
            {
                p.grad = torch.zeros_like(p);
                grad = p.grad!;
            }
            if (IsDirect(grad))
            {
                MemoryMarshal.AsBytes(source).CopyTo(grad.bytes);
            }
            else
            {
                Tensor staged = torch.empty(grad.shape, ScalarType.Float32, CPU);
                MemoryMarshal.AsBytes(source).CopyTo(staged.bytes);
                grad.copy_(staged);
            }
            offset += source.Length;
        }
    }

    /// <summary>
    /// A 64-bit hash of the raw bytes of <paramref name="data"/>: equal on replicas holding bit-identical values,
    /// different (with overwhelming odds) otherwise. Not cryptographic.
    /// </summary>
    public static ulong Checksum(ReadOnlySpan<float> data) => System.IO.Hashing.XxHash64.HashToUInt64(MemoryMarshal.AsBytes(data));

    /// <summary>
    /// Σ x² over <paramref name="data"/>, each square formed and summed in double precision (the gradient norm a step
    /// reports is its square root). Eight independent partial sums (two Vector256&lt;double&gt; accumulators per 8 floats,
    /// when the CPU has them) are combined in a fixed order, so equal inputs give equal bits on a given machine.
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> data)
    {
        int i = 0;
        double total = 0;
        if (Vector256.IsHardwareAccelerated && data.Length >= 2 * Vector256<float>.Count)
        {
            ref float start = ref MemoryMarshal.GetReference(data);
            Vector256<double> a0 = Vector256<double>.Zero, a1 = Vector256<double>.Zero, a2 = Vector256<double>.Zero, a3 = Vector256<double>.Zero;
            for (; i <= data.Length - 2 * Vector256<float>.Count; i += 2 * Vector256<float>.Count)
            {
                (Vector256<double> l0, Vector256<double> h0) = Vector256.Widen(Vector256.LoadUnsafe(ref start, (nuint)i));
                (Vector256<double> l1, Vector256<double> h1) = Vector256.Widen(Vector256.LoadUnsafe(ref start, (nuint)(i + Vector256<float>.Count)));
                a0 += l0 * l0;
                a1 += h0 * h0;
                a2 += l1 * l1;
                a3 += h1 * h1;
            }
            total = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < data.Length; i++) total += (double)data[i] * data[i];
        return total;
    }

    private static Span<float> Slice(float[] buffer, int offset, TorchSharp.Modules.Parameter p)
    {
        long n = p.numel();
        if (offset + n > buffer.Length) throw new ArgumentException($"the buffer holds {buffer.Length} elements, the parameters need more", nameof(buffer));
        return buffer.AsSpan(offset, (int)n);
    }

    /// <summary>A gradient whose storage can be read and written as floats in place.</summary>
    private static bool IsDirect(Tensor grad) =>
        grad.device_type == DeviceType.CPU && grad.dtype == ScalarType.Float32 && grad.is_contiguous();
}
