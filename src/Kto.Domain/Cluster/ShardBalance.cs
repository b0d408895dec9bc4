using System.Collections.Immutable;

namespace Kto.Domain.Cluster;

/// <summary>
/// The coordinator's balance of a step's members of unequal speed (spare boxes of different GPUs, or a box whose cores
/// something else shares): each member's share of every micro-batch follows how long it takes per example, so the
/// members of a synchronous step finish together instead of the fast ones waiting for the slowest every step.
/// </summary>
/// <remarks>
/// After each commit of a step that ran with the same members and shares as the one before (otherwise what the
/// members scored ahead was for another split, and the step's times say nothing about the new one), a member's whole compute for the step — <see cref="StepReduced.Seconds"/> less
/// <see cref="StepReduced.ExchangeSeconds"/>, plus <see cref="StepReduced.AheadSeconds"/> — divided by its share of the
/// step's units (examples of a micro-batch, or under full_determinism its slices) gives its seconds per whole step,
/// smoothed over steps (exponential moving average, <see cref="Smoothing"/>). Once every member has
/// <see cref="MinSamples"/> of them, the units are apportioned in inverse proportion (each member keeps at least one),
/// and the new shares are taken only when they shorten the predicted slowest member by more than
/// <see cref="Threshold"/>, and no sooner than <see cref="Hold"/> such steps after the last change — so a split moves
/// rarely, on a difference that outlasts the machine's noise, and the reference scored ahead for the next step is kept.
/// Which member computes which examples changes no bit under full_determinism, and in the ordinary step only the
/// order of float sums. Pure: the driver keeps it in its state.
/// </remarks>
public sealed record ShardBalance
{
    /// <summary>No measurements, equal shares.</summary>
    public static ShardBalance Empty { get; } = new();

    /// <summary>Weight of the newest step in the moving average.</summary>
    public const double Smoothing = 0.3;

    /// <summary>Steps measured per member before shares move away from equal.</summary>
    public const int MinSamples = 5;

    /// <summary>Steps of one membership and split measured before its split may move again.</summary>
    public const int Hold = 10;

    /// <summary>Smallest predicted gain (a fraction of the slowest member's compute) worth a new split.</summary>
    public const double Threshold = 0.05;

    /// <summary>Per trainer: smoothed seconds its compute would take for a whole step, and how many steps that average holds.</summary>
    public ImmutableDictionary<string, (double Seconds, int Samples)> Speed { get; init; } =
        ImmutableDictionary.Create<string, (double, int)>(StringComparer.Ordinal);

    /// <summary>The shares decided for a membership (ids in step order, comma-joined), or null.</summary>
    public (string Members, int[] Shares)? Current { get; init; }

    /// <summary>The membership and split of the last commit observed, and how many commits in a row have had them.</summary>
    public (string Members, string Shares, int Steps)? Last { get; init; }

    /// <summary>The shares for a step of <paramref name="members"/> (in step order), or null for equal shares.</summary>
    public int[]? SharesFor(IReadOnlyList<string> members) => Current is { } c && c.Members == string.Join(",", members) ? c.Shares : null;

    /// <summary>
    /// Learns from a committed attempt's reports and decides the shares of the next step with the same members.
    /// Returns the new balance and, when the shares changed, a line saying so.
    /// </summary>
    /// <param name="members">The attempt's members, in step order.</param>
    /// <param name="shares">The shares it ran with (null: equal).</param>
    /// <param name="reports">The members' reports (any order; a missing one leaves that member's average as it was).</param>
    /// <param name="units">What a share divides: examples per micro-batch, or under full_determinism slices per micro-batch.</param>
    public (ShardBalance Balance, string? Change) Observe(IReadOnlyList<string> members, IReadOnlyList<int>? shares, IReadOnlyCollection<StepReduced> reports, int units)
    {
        if (members.Count < 2 || units < members.Count) return (this, null);
        int[] counts = ShardPlan.Apportion(units, shares ?? [.. members.Select(_ => 1)]);
        string key = string.Join(",", members), split = string.Join(",", counts);
        if (Last is not { } last || last.Members != key || last.Shares != split)
            return (this with { Last = (key, split, 0) }, null); // the first step of a membership or split: measured from the next
        var speed = Speed;
        foreach (StepReduced r in reports)
        {
            int rank = IndexOf(members, r.TrainerId);
            if (rank < 0 || counts[rank] == 0) continue;
            double busy = Math.Max(0, r.Seconds - r.ExchangeSeconds) + r.AheadSeconds;
            double perStep = busy * units / counts[rank];
            speed = speed.SetItem(r.TrainerId, speed.TryGetValue(r.TrainerId, out var old)
                ? (old.Seconds + Smoothing * (perStep - old.Seconds), old.Samples + 1)
                : (perStep, 1));
        }
        var next = this with { Speed = speed, Last = (key, split, last.Steps + 1) };
        if (last.Steps + 1 < Hold || members.Any(m => !speed.TryGetValue(m, out var s) || s.Samples < MinSamples || s.Seconds <= 0)) return (next, null);

        double[] perStepSeconds = [.. members.Select(m => speed[m].Seconds)];
        double Slowest(int[] c) => Enumerable.Range(0, c.Length).Max(i => perStepSeconds[i] * c[i] / units);
        int[] candidate = Proposal(perStepSeconds, units);
        if (candidate.SequenceEqual(counts) || Slowest(candidate) >= Slowest(counts) * (1 - Threshold)) return (next, null);
        string line = $"shares of each micro-batch rebalanced for {key}: {string.Join(", ", members.Select((m, i) => $"{m} {candidate[i]}"))} of {units} " +
            $"(was {string.Join(", ", counts)}; seconds per whole step {string.Join(", ", perStepSeconds.Select(s => s.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)))}; " +
            $"slowest member predicted {Slowest(candidate):0.000} s instead of {Slowest(counts):0.000} s)";
        bool equal = candidate.SequenceEqual(ShardPlan.Apportion(units, [.. members.Select(_ => 1)]));
        return (next with { Current = equal ? null : (key, candidate) }, line);
    }

    /// <summary>Units in inverse proportion to each member's seconds per step, at least one each.</summary>
    private static int[] Proposal(double[] perStepSeconds, int units)
    {
        double fastest = perStepSeconds.Min();
        int[] weights = [.. perStepSeconds.Select(s => (int)Math.Max(1, Math.Round(1_000_000 * fastest / s)))];
        int[] counts = ShardPlan.Apportion(units, weights);
        for (int i = 0; i < counts.Length; i++)
        {
            if (counts[i] > 0) continue;
            int donor = Array.IndexOf(counts, counts.Max());
            counts[donor]--;
            counts[i]++;
        }
        return counts;
    }

    private static int IndexOf(IReadOnlyList<string> members, string id)
    {
        for (int i = 0; i < members.Count; i++)
            if (members[i] == id) return i;
        return -1;
    }
}
