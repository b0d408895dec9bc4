using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// Right-padded (prompt ‖ completion) sequences and the mask of completion tokens, ready for the model.
/// </summary>
/// <param name="Ids">(B, T) int64 token ids; padding after the last token.</param>
/// <param name="LabelMask">(B, T−1) float: 1 where token t+1 is a completion token (the positions whose
/// next-token log-prob counts), 0 for prompt and padding.</param>
public sealed record SequenceBatch(Tensor Ids, Tensor LabelMask) : IDisposable
{
    /// <summary>Pads and stacks <paramref name="sequences"/>; <paramref name="padId"/> is never scored.</summary>
    public static SequenceBatch Collate(IReadOnlyList<(int[] Prompt, int[] Completion)> sequences, int padId, Device device)
    {
        int b = sequences.Count;
        int t = sequences.Max(s => s.Prompt.Length + s.Completion.Length);
        if (t < 2) t = 2;
        var ids = new long[b * t];
        var mask = new float[b * (t - 1)];
        for (int i = 0; i < b; i++)
        {
            var (p, c) = sequences[i];
            int n = p.Length + c.Length;
            for (int j = 0; j < t; j++)
                ids[i * t + j] = j < p.Length ? p[j] : j < n ? c[j - p.Length] : padId;
            // Token j+1 is predicted at position j; completion tokens sit at [p.Length, n).
            for (int j = Math.Max(p.Length, 1); j < n; j++)
                mask[i * (t - 1) + j - 1] = 1f;
        }
        return new SequenceBatch(
            torch.tensor(ids, [b, t], ScalarType.Int64, device),
            torch.tensor(mask, [b, t - 1], ScalarType.Float32, device));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Ids.Dispose();
        LabelMask.Dispose();
    }
}
