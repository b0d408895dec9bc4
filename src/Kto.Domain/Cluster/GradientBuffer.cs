using System.Runtime.InteropServices;
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
