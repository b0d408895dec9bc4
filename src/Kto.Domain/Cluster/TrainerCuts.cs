namespace Kto.Domain.Cluster;

/// <summary>A trainer as the run coordinator sees it when it decides who is left out of step membership.</summary>
/// <param name="Id">The trainer's id (<c>--node-id</c>).</param>
/// <param name="Address">The Akka address of the process now registered under <paramref name="Id"/>: one incarnation of
/// the trainer (a node that was downed and joined again has a new one).</param>
/// <param name="HeldStep">The newest step it holds (trainers holding newer steps are kept first).</param>
/// <param name="Unreachable">Whether the coordinator itself finds it unreachable (its own failure detector, or the
/// cluster's gossip where it does not monitor that node).</param>
public sealed record TrainerReachability(string Id, string Address, int HeldStep, bool Unreachable);

/// <summary>A trainer to down: cut off from kept trainers for at least the down-after time.</summary>
/// <param name="Id">The trainer's id.</param>
/// <param name="Address">The incarnation to down.</param>
/// <param name="For">How long it has been cut off.</param>
public sealed record CutOffDowning(string Id, string Address, TimeSpan For);

/// <summary>What <see cref="TrainerCuts.Evaluate"/> decided.</summary>
/// <param name="Excluded">Trainers to leave out of step membership, with the reason for each ("unreachable", or
/// "cut off from trainer(s) …, which are kept").</param>
/// <param name="Downing">Trainers cut off for long enough to be downed (their hosts join again).</param>
public sealed record CutVerdict(IReadOnlyDictionary<string, string> Excluded, IReadOnlyList<CutOffDowning> Downing);

/// <summary>
/// The coordinator's view of splits between trainers, per trainer incarnation. Each trainer reports the other trainers
/// its own failure detector finds unreachable (<see cref="PeersUnreachable"/>); from those reports and the coordinator's
/// own view, <see cref="Evaluate"/> picks the trainers to leave out (<see cref="PartitionSide"/> keeps one side) and,
/// once one has been cut off for the down-after time, says to down it.
/// <para>
/// Reports and cut-off clocks belong to the process that made them: a report from an earlier incarnation of a trainer
/// (a node downed during a cut, now back under the same id at a new address) says nothing about the new one, and a
/// new incarnation starts a fresh clock. Without that rule a stale "t1 unreachable" from before a heal downs the
/// trainer that just joined again.
/// </para>
/// Not thread-safe: owned by one actor.
/// </summary>
public sealed class TrainerCuts
{
    private readonly Dictionary<string, (string Address, string[] Peers)> _reports = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Address, DateTime Since)> _cutOffSince = new(StringComparer.Ordinal);

    /// <summary>
    /// Records what trainer <paramref name="trainerId"/>, at <paramref name="reporterAddress"/>, finds unreachable
    /// (replacing its earlier report).
    /// </summary>
    /// <param name="trainerId">The reporting trainer's id.</param>
    /// <param name="reporterAddress">The Akka address of the process that sent the report.</param>
    /// <param name="unreachablePeers">Addresses of other trainers it finds unreachable (order does not matter).</param>
    /// <returns>Whether the report differs from the last one recorded for this trainer and incarnation.</returns>
    public bool Report(string trainerId, string reporterAddress, IReadOnlyList<string> unreachablePeers)
    {
        string[] peers = [.. unreachablePeers.Order(StringComparer.Ordinal)];
        bool changed = !_reports.TryGetValue(trainerId, out var before) || before.Address != reporterAddress
            || !before.Peers.SequenceEqual(peers, StringComparer.Ordinal);
        _reports[trainerId] = (reporterAddress, peers);
        return changed;
    }

    /// <summary>
    /// Decides who is left out: the trainers the coordinator finds unreachable, and among the rest those cut off from a
    /// kept trainer (kept first: newest held step, then id). Forgets reports and clocks of trainers no longer in
    /// <paramref name="trainers"/> or now at another address.
    /// </summary>
    /// <param name="trainers">Every registered trainer (ids unique).</param>
    /// <param name="now">The current time (UTC).</param>
    /// <param name="downAfter">How long a trainer stays cut off before it is downed.</param>
    /// <returns>Who is excluded and why, and whom to down now (each downing is returned once; a trainer cut off again
    /// afterwards starts a new clock).</returns>
    public CutVerdict Evaluate(IReadOnlyList<TrainerReachability> trainers, DateTime now, TimeSpan downAfter)
    {
        var byId = trainers.ToDictionary(t => t.Id, StringComparer.Ordinal);
        foreach (string id in _reports.Where(kv => !byId.TryGetValue(kv.Key, out var t) || t.Address != kv.Value.Address).Select(kv => kv.Key).ToList())
            _reports.Remove(id);
        var own = trainers.Where(t => t.Unreachable).Select(t => t.Id).ToHashSet(StringComparer.Ordinal);
        var idOf = trainers.ToDictionary(t => t.Address, t => t.Id, StringComparer.Ordinal);
        var cuts = _reports.Where(kv => !own.Contains(kv.Key))
            .SelectMany(kv => kv.Value.Peers.Where(idOf.ContainsKey).Select(a => (A: kv.Key, B: idOf[a])))
            .Where(c => c.A != c.B && !own.Contains(c.B)).ToList();
        var priority = trainers.Where(t => !t.Unreachable)
            .OrderByDescending(t => t.HeldStep).ThenBy(t => t.Id, StringComparer.Ordinal).Select(t => t.Id).ToList();
        var cutOff = PartitionSide.LeftOut(priority, cuts).ToHashSet(StringComparer.Ordinal);
        var excluded = own.Union(cutOff).ToHashSet(StringComparer.Ordinal);
        var reasons = excluded.ToDictionary(id => id, id => own.Contains(id) ? "unreachable"
            : $"cut off from trainer(s) {string.Join(",", cuts.Where(c => c.A == id || c.B == id).Select(c => c.A == id ? c.B : c.A).Where(p => !excluded.Contains(p)).Distinct().Order(StringComparer.Ordinal))}, which are kept",
            StringComparer.Ordinal);

        foreach (string id in _cutOffSince.Where(kv => !cutOff.Contains(kv.Key) || byId[kv.Key].Address != kv.Value.Address).Select(kv => kv.Key).ToList())
            _cutOffSince.Remove(id);
        var downing = new List<CutOffDowning>();
        foreach (string id in priority.Where(cutOff.Contains))
        {
            string address = byId[id].Address;
            if (!_cutOffSince.TryGetValue(id, out var clock)) _cutOffSince[id] = clock = (address, now);
            if (now - clock.Since < downAfter) continue;
            _cutOffSince.Remove(id);
            downing.Add(new CutOffDowning(id, address, now - clock.Since));
        }
        return new CutVerdict(reasons, downing);
    }
}
