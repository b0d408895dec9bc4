using System.IO.Hashing;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Cluster;

/// <summary>Moves all gradients of a model in and out of one flat float buffer, in parameter order.</summary>
public static class GradientCopy
{
    /// <summary>Copies the gradients (zeros where a parameter has none) into <paramref name="buffer"/>.</summary>
    public static void ToBuffer(IReadOnlyList<TorchSharp.Modules.Parameter> parameters, float[] buffer)
    {
        int offset = 0;
        foreach (var p in parameters)
        {
            int n = (int)p.numel();
            if (p.grad is Tensor g)
            {
                using Tensor flat = g.detach().cpu().contiguous().view(-1);
                MemoryMarshal.Cast<byte, float>(flat.bytes).CopyTo(buffer.AsSpan(offset, n));
            }
            else
            {
                buffer.AsSpan(offset, n).Clear();
            }
            offset += n;
        }
    }

    /// <summary>Writes <paramref name="buffer"/> back as the parameters' gradients.</summary>
    public static void FromBuffer(float[] buffer, IReadOnlyList<TorchSharp.Modules.Parameter> parameters)
    {
        int offset = 0;
        using var noGrad = torch.no_grad();
        foreach (var p in parameters)
        {
            int n = (int)p.numel();
            using Tensor src = torch.tensor(buffer.AsSpan(offset, n).ToArray(), p.shape, device: p.device);
            if (p.grad is Tensor g) g.copy_(src);
            else p.grad = src.clone();
            offset += n;
        }
    }

    /// <summary>64-bit hash of the buffer's bytes; replicas with equal buffers report equal checksums.</summary>
    public static ulong Checksum(ReadOnlySpan<float> data) => XxHash64.HashToUInt64(MemoryMarshal.AsBytes(data));
}
