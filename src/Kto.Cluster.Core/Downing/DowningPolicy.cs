namespace Kto.Cluster.Core.Downing;

/// <summary>A cluster member as one node sees it when it takes downing decisions.</summary>
/// <param name="Address">Its Akka address (what <c>Cluster.Down</c> takes).</param>
/// <param name="Coordinator">Whether it has the <c>coordinator</c> role.</param>
/// <param name="Reachable">
/// Whether this node counts it reachable: by this node's own failure detector where it monitors the member, otherwise
/// as the cluster's gossip says (anyone's observation). So a trainer's stale observation never counts against a
/// coordinator, and trainers that only cannot reach each other (a split between trainers) are not downed here: the run
/// coordinator keeps one side and downs the other (<c>PartitionSide</c>).
/// </param>
/// <param name="AddressRank">Its position in Akka's address ordering among the members (ties between halves of the
/// coordinators are broken by the lowest address, as Akka's keep-majority does).</param>
public sealed record DowningMember(string Address, bool Coordinator, bool Reachable, int AddressRank);

/// <summary>What one node sees at one tick.</summary>
/// <param name="Self">This node (its <see cref="DowningMember.Reachable"/> is ignored).</param>
/// <param name="SelfUp">Whether this node is Up or WeaklyUp (a joining node decides nothing).</param>
/// <param name="Others">Every other member that is not Down, Exiting or Removed.</param>
public sealed record DowningView(DowningMember Self, bool SelfUp, IReadOnlyList<DowningMember> Others);

/// <summary>The policy's memory between ticks: since when each member has been unreachable, since when this node has had no coordinator.</summary>
public sealed record DowningState(IReadOnlyDictionary<string, DateTime> UnreachableSince, DateTime? OrphanSince)
{
    /// <summary>Nothing seen yet.</summary>
    public static readonly DowningState Empty = new(new Dictionary<string, DateTime>(StringComparer.Ordinal), null);
}

/// <summary>Why a member is downed (for the log line).</summary>
public enum DowningReason
{
    /// <summary>Unreachable for at least <see cref="DowningPolicy.DownAfter"/>, decided by a coordinator on the coordinators' majority side.</summary>
    Unreachable,

    /// <summary>This coordinator host is on the minority side of a split between coordinator hosts: it steps aside.</summary>
    CoordinatorMinority,

    /// <summary>This trainer/scorer node has seen no coordinator for at least <see cref="DowningPolicy.OrphanAfter"/>: it leaves, to join again.</summary>
    NoCoordinator,
}

/// <summary>One member to down.</summary>
public sealed record DowningDecision(string Address, DowningReason Reason, TimeSpan For);

/// <summary>
/// Downing for a training cluster, as a pure function of what one node sees (Akka's split-brain resolver decides in a
/// pure <c>DowningStrategy</c> the same way). The run coordinator owns the run's truth, so only coordinator hosts decide
/// who leaves; trainers and scorers never down anyone but themselves:
/// <list type="bullet">
/// <item>A coordinator host on the majority side of the coordinator hosts (strictly more than half of them reachable
/// from it, itself included; exactly half counts when that half holds the lowest address, as in Akka's keep-majority)
/// downs every member unreachable for <see cref="DownAfter"/> — trainers, scorers, and coordinator hosts on the other
/// side. With a single coordinator host it is always the majority: no number of trainers dying, hanging or returning can
/// take it down, and it never downs itself.</item>
/// <item>A coordinator host on the minority side downs only itself, once a coordinator host has been unreachable for
/// <see cref="DownAfter"/>; its host then joins the cluster again (a singleton must never run on both sides).</item>
/// <item>A trainer or scorer node that has seen no reachable coordinator host for <see cref="OrphanAfter"/> (killed,
/// frozen, partitioned away, or gone after a graceful leave) downs itself; its host joins again with the replica it
/// holds, so a restarted coordinator finds it.</item>
/// </list>
/// Unlike Akka's split-brain resolver this never downs all members when reachability keeps changing
/// (<c>down-all-when-unstable</c>: constant churn is the normal state of a fleet of spare boxes) and never downs a
/// coordinator because a trainer observed it unreachable (Akka's resolver downs both ends of such an "indirectly
/// connected" cycle, and lets whichever member is the cluster leader decide, trainers included).
/// </summary>
public static class DowningPolicy
{
    /// <summary>How long a member must stay unreachable before a coordinator downs it. 5 s: the step membership leaves it
    /// out at once, so this only bounds how long a restarted node waits to be let in (new members become Up only when no
    /// member is unreachable) and how long a frozen node may still come back without a rejoin. Akka's split-brain
    /// resolver uses 20 s by default (<c>stable-after</c>); its cluster of a few nodes on one network needs less.</summary>
    public static readonly TimeSpan DownAfter = TimeSpan.FromSeconds(5);

    /// <summary>How long a trainer or scorer node waits without a reachable coordinator before it downs itself and joins
    /// again. Same as <see cref="DownAfter"/>: a coordinator frozen longer is downed-and-replaced or wakes to a cluster
    /// that its nodes rejoin within seconds.</summary>
    public static readonly TimeSpan OrphanAfter = TimeSpan.FromSeconds(5);

    /// <summary>The decisions of one tick at time <paramref name="now"/>, and the state for the next.</summary>
    public static (DowningState State, IReadOnlyList<DowningDecision> Decisions) Decide(DowningState state, DowningView view, DateTime now)
    {
        var since = new Dictionary<string, DateTime>(StringComparer.Ordinal);
        foreach (DowningMember m in view.Others.Where(m => !m.Reachable))
            since[m.Address] = state.UnreachableSince.TryGetValue(m.Address, out DateTime first) ? first : now;
        TimeSpan UnreachableFor(DowningMember m) => since.TryGetValue(m.Address, out DateTime first) ? now - first : TimeSpan.Zero;

        if (!view.SelfUp) return (new DowningState(since, null), []);
        if (!view.Self.Coordinator)
        {
            bool orphan = !view.Others.Any(m => m.Coordinator && m.Reachable);
            DateTime? orphanSince = orphan ? state.OrphanSince ?? now : null;
            var next = new DowningState(since, orphanSince);
            return orphanSince is { } o && now - o >= OrphanAfter
                ? (next, [new DowningDecision(view.Self.Address, DowningReason.NoCoordinator, now - o)])
                : (next, []);
        }

        var coordinators = view.Others.Where(m => m.Coordinator).Append(view.Self).ToList();
        var side = coordinators.Where(m => m == view.Self || m.Reachable).ToList();
        int lowest = coordinators.Min(m => m.AddressRank);
        bool majority = 2 * side.Count > coordinators.Count || (2 * side.Count == coordinators.Count && side.Any(m => m.AddressRank == lowest));
        var after = new DowningState(since, null);
        if (!majority)
        {
            TimeSpan longest = coordinators.Where(m => !m.Reachable && m != view.Self).Select(UnreachableFor).DefaultIfEmpty(TimeSpan.Zero).Max();
            return longest >= DownAfter ? (after, [new DowningDecision(view.Self.Address, DowningReason.CoordinatorMinority, longest)]) : (after, []);
        }
        return (after, [.. view.Others.Where(m => !m.Reachable && UnreachableFor(m) >= DownAfter)
            .Select(m => new DowningDecision(m.Address, DowningReason.Unreachable, UnreachableFor(m)))]);
    }
}
