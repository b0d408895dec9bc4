using System.Collections.Immutable;

namespace Kto.Domain.Cluster;

/// <summary>What a report does to a <see cref="StepRound"/>.</summary>
public enum RoundOutcome
{
    /// <summary>Not every member has reported yet.</summary>
    Pending,
    /// <summary>Every member reported the same checksum: persist <see cref="StepCommitted"/>, then announce.</summary>
    Commit,
    /// <summary>Members disagree on the reduced gradients: abort and retry the step.</summary>
    Mismatch,
    /// <summary>The report belongs to another step or generation, or to a non-member: ignore it.</summary>
    Stale,
}

/// <summary>
/// One attempt (generation) at one step, transient: its membership and the "reduced" reports received so far. Pure;
/// the coordinator holds one and replaces it on every report or membership change.
/// </summary>
/// <param name="Step">The step.</param>
/// <param name="Generation">This attempt.</param>
/// <param name="Members">Trainer ids in ring order.</param>
/// <param name="Reports">Checksums reported so far, by member.</param>
public sealed record StepRound(int Step, long Generation, ImmutableArray<string> Members, ImmutableDictionary<string, ulong> Reports)
{
    /// <summary>A fresh attempt with no reports.</summary>
    public static StepRound Start(int step, long generation, IEnumerable<string> members)
    {
        var list = members.ToImmutableArray();
        if (list.Length == 0) throw new ArgumentException("a step needs at least one member", nameof(members));
        if (list.Distinct().Count() != list.Length) throw new ArgumentException("members must be distinct", nameof(members));
        return new StepRound(step, generation, list, ImmutableDictionary<string, ulong>.Empty);
    }

    /// <summary>Records <paramref name="member"/>'s report.</summary>
    public (StepRound Round, RoundOutcome Outcome) Report(string member, int step, long generation, ulong checksum)
    {
        if (step != Step || generation != Generation || !Members.Contains(member) || Reports.ContainsKey(member))
            return (this, RoundOutcome.Stale);
        var next = this with { Reports = Reports.Add(member, checksum) };
        if (next.Reports.Values.Distinct().Count() > 1) return (next, RoundOutcome.Mismatch);
        return (next, next.Reports.Count == Members.Length ? RoundOutcome.Commit : RoundOutcome.Pending);
    }

    /// <summary>True when losing <paramref name="member"/> means this attempt cannot finish.</summary>
    public bool Needs(string member) => Members.Contains(member);

    /// <summary>The next attempt at the same step with <paramref name="members"/> (e.g. the survivors).</summary>
    public StepRound Retry(IEnumerable<string> members) => Start(Step, GenerationNumbers.Next(Generation), members);

    /// <summary>The event to persist once <see cref="RoundOutcome.Commit"/> was returned.</summary>
    public StepCommitted ToCommit() => Reports.Count == Members.Length && Reports.Values.Distinct().Count() == 1
        ? new StepCommitted(Step, Generation, Members, Reports.Values.First())
        : throw new InvalidOperationException($"step {Step} generation {Generation} is not complete");
}
