namespace Kto.Domain.Cluster;

/// <summary>
/// Which trainers keep training when some of them cannot reach each other while the run coordinator reaches them all
/// (a split between trainers, e.g. 2 | 2 behind two switches). A step's ring needs every member to reach its
/// neighbours, so the members of a step must be a set with no cut between any two of them. Akka's split-brain resolver
/// would down both ends of each such "indirectly connected" pair; here the coordinator keeps one side and leaves out
/// (then downs) the rest, so the run goes on.
/// </summary>
public static class PartitionSide
{
    /// <summary>
    /// The trainers to leave out: going through <paramref name="byPriority"/> in order, a trainer is kept unless it is
    /// cut from one already kept. The kept set therefore has no cut inside it, every trainer left out is cut from a kept
    /// one of higher priority, and with no cuts nobody is left out. Greedy, not the largest cut-free set (finding that is
    /// NP-hard in general): with the members of the current step first, a split keeps the side that holds the step's
    /// first member, and a newcomer never displaces a member.
    /// </summary>
    /// <param name="byPriority">Trainer ids, most wanted first (ids are unique).</param>
    /// <param name="cuts">Pairs of trainer ids that cannot reach each other, as either end reported it (order within a
    /// pair does not matter; ids not in <paramref name="byPriority"/> are ignored).</param>
    /// <returns>The ids left out, in priority order.</returns>
    public static IReadOnlyList<string> LeftOut(IReadOnlyList<string> byPriority, IEnumerable<(string A, string B)> cuts)
    {
        var cutFrom = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (a, b) in cuts)
        {
            if (a == b) continue;
            (cutFrom.TryGetValue(a, out var fromA) ? fromA : cutFrom[a] = new HashSet<string>(StringComparer.Ordinal)).Add(b);
            (cutFrom.TryGetValue(b, out var fromB) ? fromB : cutFrom[b] = new HashSet<string>(StringComparer.Ordinal)).Add(a);
        }
        var kept = new HashSet<string>(StringComparer.Ordinal);
        var leftOut = new List<string>();
        foreach (string id in byPriority)
        {
            if (cutFrom.TryGetValue(id, out var peers) && peers.Overlaps(kept)) leftOut.Add(id);
            else kept.Add(id);
        }
        return leftOut;
    }
}
