using Kto.Domain.Training;

namespace Kto.Domain.Tasks;

/// <summary>Turns samples into KTO feedback: a program checker gives each one a thumbs-up or thumbs-down.</summary>
public static class FeedbackLabeler
{
    /// <summary>Separates the subsampling stream from other users of the same seed.</summary>
    private const ulong SubsampleDomain = 0x4B544F5F4C41424CUL; // "KTO_LABL"

    /// <summary>
    /// Labels each sample with <see cref="IVerifiableTask.IsCorrect"/>. When <paramref name="desirableShare"/> is
    /// given (0 &lt; s &lt; 1), subsamples so that the desirable share of the output is as close as possible to s
    /// while keeping as many rows as possible: only rows of the over-represented class are dropped, chosen by
    /// <paramref name="seed"/>, and the kept rows stay in their original order. When one class is absent nothing is
    /// dropped (no subsample could get closer without emptying the output).
    /// </summary>
    /// <returns>The kept rows and how many of them are desirable and undesirable.</returns>
    /// <exception cref="ArgumentException"><paramref name="desirableShare"/> is not strictly between 0 and 1.</exception>
    public static (IReadOnlyList<LabelledSample> Rows, int Desirable, int Undesirable) Label(
        IReadOnlyList<Sample> samples, IVerifiableTask task, double? desirableShare, long seed)
    {
        if (desirableShare is double s && !(s > 0 && s < 1))
            throw new ArgumentException($"the desirable share must lie strictly between 0 and 1, got {s}");
        LabelledSample[] all = [.. samples.Select(x => new LabelledSample(x.Prompt, x.Completion, task.IsCorrect(x.Prompt, x.Completion)))];
        int desirable = all.Count(x => x.Label), undesirable = all.Length - desirable;
        if (desirableShare is not double share || desirable == 0 || undesirable == 0)
            return (all, desirable, undesirable);

        bool dropDesirable = (double)desirable / all.Length > share;
        int fixedCount = dropDesirable ? undesirable : desirable;
        int available = dropDesirable ? desirable : undesirable;
        int keep = BestKeep(fixedCount, available, dropDesirable ? share : 1 - share);

        int[] candidates = [.. Enumerable.Range(0, all.Length).Where(i => all[i].Label == dropDesirable)];
        var rng = new SplitMix64(new SplitMix64((ulong)seed ^ SubsampleDomain).Next());
        for (int i = 0; i < keep; i++)
        {
            int j = i + (int)rng.NextBelow((ulong)(candidates.Length - i));
            (candidates[i], candidates[j]) = (candidates[j], candidates[i]);
        }
        var dropped = new HashSet<int>(candidates.Skip(keep));
        LabelledSample[] rows = [.. all.Where((_, i) => !dropped.Contains(i))];
        return dropDesirable ? (rows, keep, undesirable) : (rows, desirable, keep);
    }

    /// <summary>
    /// How many of <paramref name="available"/> rows of the over-represented class to keep next to
    /// <paramref name="fixedCount"/> rows of the other so that the kept class's share is closest to
    /// <paramref name="share"/>; the larger count wins a tie.
    /// </summary>
    private static int BestKeep(int fixedCount, int available, double share)
    {
        double ideal = share * fixedCount / (1 - share);
        int low = Math.Clamp((int)Math.Floor(ideal), 0, available);
        int high = Math.Clamp((int)Math.Ceiling(ideal), 0, available);
        double Miss(int k) => Math.Abs((double)k / (k + fixedCount) - share);
        return Miss(low) < Miss(high) ? low : high;
    }
}
