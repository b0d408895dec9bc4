using TorchSharp;

namespace Kto.Domain.Devices;

/// <summary>Parses the <c>--device cpu|cuda[:n]</c> option and checks the backend can serve it.</summary>
public static class DeviceSpec
{
    /// <summary>Parses "cpu", "cuda" or "cuda:N" (N ≥ 0) without touching the native library.</summary>
    public static bool TryParse(string text, out (DeviceType Type, int Index) device)
    {
        device = (DeviceType.CPU, -1);
        if (text == "cpu") return true;
        if (text == "cuda") { device = (DeviceType.CUDA, 0); return true; }
        if (text.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(5), out int n) && n >= 0)
        {
            device = (DeviceType.CUDA, n);
            return true;
        }
        return false;
    }

    /// <summary>The torch device for <paramref name="text"/>, with a clear error when CUDA is asked of a CPU build.</summary>
    public static torch.Device Resolve(string text)
    {
        if (!TryParse(text, out var d))
            throw new ArgumentException($"device must be \"cpu\", \"cuda\" or \"cuda:N\", got \"{text}\"", nameof(text));
        if (d.Type == DeviceType.CPU) return torch.CPU;
        if (!torch.cuda.is_available())
            throw new InvalidOperationException(
                $"device \"{text}\" asked for, but CUDA is not available: this build uses TorchSharp-cpu " +
                "(rebuild with -p:KtoTorchBackend=cuda on a GPU box) or no GPU is visible");
        return new torch.Device(DeviceType.CUDA, d.Index);
    }
}
