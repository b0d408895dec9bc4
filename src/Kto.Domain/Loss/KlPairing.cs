namespace Kto.Domain.Loss;

/// <summary>
/// Chooses the mismatched completion y' for each example's KL pair (x_i, y').
/// </summary>
/// <remarks>
/// The dataset (in its load order, before any shuffling) is cut into chunks of <c>chunkSize</c> examples and
/// the completions are rotated by one inside each chunk: example i takes the completion of i + 1, the last
/// takes the first's. Because pairs are fixed per example, reference log-probs of the KL pairs can be
/// precomputed once. Two refinements over TRL:
/// <list type="bullet">
/// <item>An example is never paired with its own completion. A final chunk of one example (TRL pairs it with
/// itself) borrows the completion of the example just before it.</item>
/// <item>Where the next example shares the prompt (paired data unpaired into adjacent chosen/rejected rows), the
/// rotation moves on to the first later example in the chunk with a different prompt, so y' is a completion
/// written for another prompt. If every example in the chunk shares the prompt, plain rotation is used.</item>
/// </list>
/// </remarks>
public static class KlPairing
{
    /// <summary>The index of the completion each example is paired with.</summary>
    /// <param name="count">Number of examples (≥ 2).</param>
    /// <param name="chunkSize">Rotation chunk (≥ 2), normally the per-step batch size.</param>
    /// <param name="samePrompt">Whether examples i and j have the same prompt; null treats all prompts as distinct.</param>
    public static int[] Partners(int count, int chunkSize, Func<int, int, bool>? samePrompt = null)
    {
        if (count < 2) throw new ArgumentException("KL pairs need at least two examples", nameof(count));
        if (chunkSize < 2) throw new ArgumentException("the KL rotation chunk must hold at least two examples", nameof(chunkSize));
        samePrompt ??= static (_, _) => false;
        var partner = new int[count];
        for (int start = 0; start < count; start += chunkSize)
        {
            int size = Math.Min(chunkSize, count - start);
            if (size == 1)
            {
                partner[start] = start - 1; // lone last example: borrow its predecessor's completion
                continue;
            }
            for (int k = 0; k < size; k++)
            {
                int i = start + k;
                int chosen = start + (k + 1) % size;
                for (int step = 1; step < size; step++)
                {
                    int j = start + (k + step) % size;
                    if (!samePrompt(i, j)) { chosen = j; break; }
                }
                partner[i] = chosen;
            }
        }
        return partner;
    }
}
