using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>
/// The scoring scheduler of a run whose reference log-probs are precomputed by the scorer pool (a child of the run
/// coordinator). It hands the run's scoring units (see <see cref="ReferenceScoring.Units"/>) to registered scorers in
/// the order training needs them, at most <c>window</c> steps ahead of the training frontier, and persists every
/// result before anything uses it, in a journal keyed by dataset fingerprint + reference hash: after any crash the
/// stored units are never scored again (and another run over the same data and reference reuses them). The parent
/// gets every stored value as <see cref="ScoresAvailable"/>.
/// </summary>
public sealed class ReferenceScoresActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>A unit not answered within this long is handed out again (the scorer may be stuck while still reachable).</summary>
    public static readonly TimeSpan DefaultUnitTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Units a scorer is given at once (one scoring, one queued: no idle gap between units).</summary>
    public const int PerScorer = 2;

    /// <summary>Steps the pool may work ahead of the training frontier, unless the coordinator host says otherwise.</summary>
    public const int DefaultWindow = 32;

    /// <summary>Fewest events between snapshots; beyond it, a snapshot is taken once the events since the last one
    /// outnumber the units that one covered (so snapshots cost at most about twice the final table).</summary>
    private const int MinEventsPerSnapshot = 256;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly RunSpec _spec;
    private readonly int _window;
    private readonly int[][] _units;
    /// <summary>The first step that needs each unit (int.MaxValue: no step of the run does).</summary>
    private readonly int[] _firstNeed;
    private readonly int _neededUnits;
    private readonly Dictionary<string, Scorer> _scorers = new(StringComparer.Ordinal);
    private readonly HashSet<int> _persisting = [];
    private readonly Dictionary<int, DateTime> _sentAt = [];
    private readonly TimeSpan _unitTimeout;
    private ReferenceScoreTable _table;
    private int _frontier;
    private int _next;
    private long _snapshotCovers;
    private long _snapshotAt;
    private int _storedNeeded;
    private bool _completeAnnounced;

    private sealed class Scorer(IActorRef actor)
    {
        public IActorRef Actor { get; set; } = actor;
        public HashSet<int> InFlight { get; } = [];
        public bool Reachable { get; set; } = true;
    }

    /// <summary>Creates the scheduler of <paramref name="spec"/> (which must use the scorer pool).</summary>
    /// <param name="spec">The run.</param>
    /// <param name="window">Steps the pool may work ahead of the training frontier.</param>
    /// <param name="unitTimeout">How long a scorer may take for a unit before it is handed out again (default <see cref="DefaultUnitTimeout"/>).</param>
    public ReferenceScoresActor(RunSpec spec, int window, TimeSpan? unitTimeout = null)
    {
        _unitTimeout = unitTimeout ?? DefaultUnitTimeout;
        if (spec.ReferenceHash is null) throw new ArgumentException($"run {spec.RunId} does not use the scorer pool", nameof(spec));
        _spec = spec;
        _window = Math.Max(1, window);
        PersistenceId = PersistenceIdOf(spec.DatasetFingerprint, spec.ReferenceHash);
        BatchPlan plan = spec.Plan();
        _units = ReferenceScoring.Units(plan);
        var unitOf = new int[spec.ExampleCount];
        for (int u = 0; u < _units.Length; u++)
            foreach (int i in _units[u]) unitOf[i] = u;
        _firstNeed = [.. Enumerable.Repeat(int.MaxValue, _units.Length)];
        for (int s = Math.Min(spec.TotalSteps, plan.StepsPerEpoch) - 1; s >= 0; s--)
            foreach (int[] micro in plan.Step(s))
                foreach (int i in micro) _firstNeed[unitOf[i]] = s;
        _neededUnits = _firstNeed.Count(s => s != int.MaxValue);
        _table = new ReferenceScoreTable(spec.ExampleCount);

        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is not ScoresSnapshot s) return;
            _table = ReferenceScoreTable.FromSnapshot(s);
            _snapshotAt = o.Metadata.SequenceNr;
            _snapshotCovers = o.Metadata.SequenceNr;
        });
        Recover<ScoresStored>(e => _table.Add(e.Indices, e.Completion, e.Kl));
        Recover<RecoveryCompleted>(_ =>
        {
            _storedNeeded = Enumerable.Range(0, _units.Length).Count(k => _firstNeed[k] != int.MaxValue && Stored(k));
            _log.Info("reference scores for run {0}: {1} of {2} needed units stored ({3}/{4} examples) in journal {5}",
                _spec.RunId, _storedNeeded, _neededUnits, _table.Stored, _table.Count, PersistenceId);
            if (_table.Stored > 0) Context.Parent.Tell(Available(Enumerable.Range(0, _table.Count).Where(_table.Has)));
            Dispatch();
        });

        Command<RegisterScorer>(Register);
        Command<UnitScored>(OnScored);
        Command<ScoringFrontier>(f =>
        {
            if (f.Step <= _frontier) return;
            _frontier = f.Step;
            Dispatch();
        });
        Command<Terminated>(t =>
        {
            string? id = _scorers.FirstOrDefault(kv => kv.Value.Actor.Equals(t.ActorRef)).Key;
            if (id is not null) Drop(id, "lost");
        });
        Command<ClusterEvent.UnreachableMember>(u =>
        {
            // Its units go to the others at once; the scorer stays known, and gets work again if it comes back.
            foreach (var (id, scorer) in _scorers.Where(kv => kv.Value.Actor.Path.Address.Equals(u.Member.Address)).ToList())
            {
                scorer.Reachable = false;
                Requeue(scorer);
                _log.Info("scorer {0} unreachable ({1} usable scorers); its unfinished units go to the others", id, _scorers.Values.Count(x => x.Reachable));
            }
            Dispatch();
        });
        Command<ClusterEvent.ReachableMember>(r =>
        {
            foreach (var (id, scorer) in _scorers.Where(kv => kv.Value.Actor.Path.Address.Equals(r.Member.Address)).ToList())
            {
                scorer.Reachable = true;
                _log.Info("scorer {0} reachable again ({1} usable scorers)", id, _scorers.Values.Count(x => x.Reachable));
            }
            Dispatch();
        });
        Command<ClusterEvent.IClusterDomainEvent>(_ => { });
        Command<ClusterEvent.CurrentClusterState>(_ => { });
        Command<GetScoringStatus>(_ => Sender.Tell(Status()));
        Command<CheckOverdue>(_ =>
        {
            DateTime now = DateTime.UtcNow;
            foreach (var (id, scorer) in _scorers)
                foreach (int u in scorer.InFlight.Where(u => _sentAt.TryGetValue(u, out DateTime at) && now - at > _unitTimeout).ToList())
                {
                    scorer.InFlight.Remove(u);
                    _sentAt.Remove(u);
                    _next = Math.Min(_next, u);
                    _log.Warning("unit {0} not answered by scorer {1} within {2}; handed out again", u, id, _unitTimeout);
                }
            Dispatch();
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("reference score snapshot failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <summary>The journal id of the precomputed log-probs of a dataset under a reference.</summary>
    public static string PersistenceIdOf(string datasetFingerprint, string referenceHash) => $"kto-ref-scores-{datasetFingerprint}-{referenceHash}";

    /// <inheritdoc />
    public override string PersistenceId { get; }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props of the scheduler.</summary>
    public static Props Props(RunSpec spec, int window, TimeSpan? unitTimeout = null) => Akka.Actor.Props.Create(() => new ReferenceScoresActor(spec, window, unitTimeout));

    /// <inheritdoc />
    protected override void PreStart()
    {
        base.PreStart();
        Timers.StartPeriodicTimer("overdue", CheckOverdue.Instance, TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks, _unitTimeout.Ticks / 4)));
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IReachabilityEvent));
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal)) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private void Register(RegisterScorer r)
    {
        Sender.Tell(new ScorerRegistered(r.ScorerId, _spec, null));
        if (r.LoadedRun != _spec.RunId) return;
        if (_scorers.TryGetValue(r.ScorerId, out var known))
        {
            if (!known.Actor.Equals(Sender)) Requeue(known); // a restarted scorer lost what it was given
            Context.Unwatch(known.Actor);
            known.Actor = Sender;
            known.Reachable = true;
        }
        else
        {
            _scorers[r.ScorerId] = new Scorer(Sender);
        }
        Context.Watch(Sender);
        _log.Info("scorer {0} ready ({1} scorers)", r.ScorerId, _scorers.Count);
        Dispatch();
    }

    private void Drop(string id, string why)
    {
        Scorer s = _scorers[id];
        _scorers.Remove(id);
        Context.Unwatch(s.Actor);
        Requeue(s);
        _log.Info("scorer {0} {1} ({2} scorers); its unfinished units go to the others", id, why, _scorers.Count);
        Dispatch();
    }

    private void Requeue(Scorer s)
    {
        foreach (int u in s.InFlight) _next = Math.Min(_next, u);
        s.InFlight.Clear();
    }

    private bool Stored(int unit) => _table.HasAll(_units[unit]);

    private bool Assigned(int unit) => _persisting.Contains(unit) || _scorers.Values.Any(s => s.InFlight.Contains(unit));

    /// <summary>Gives free scorers the next unstored units within the window, in the order training needs them.</summary>
    private void Dispatch()
    {
        if (IsRecovering) return;
        int limit = _frontier + _window;
        foreach (Scorer s in _scorers.Values.Where(s => s.Reachable).OrderBy(s => s.InFlight.Count))
        {
            while (s.InFlight.Count < PerScorer)
            {
                while (_next < _units.Length && (Stored(_next) || Assigned(_next) || _firstNeed[_next] == int.MaxValue)) _next++;
                if (_next >= _units.Length || _firstNeed[_next] >= limit) break;
                s.InFlight.Add(_next);
                _sentAt[_next] = DateTime.UtcNow;
                s.Actor.Tell(new ScoreUnit(_next, _units[_next]));
                _next++;
            }
        }
        // Units skipped above because they were assigned may come back (a scorer lost); Requeue rewinds _next.
    }

    private void OnScored(UnitScored r)
    {
        if (_scorers.TryGetValue(r.ScorerId, out var s)) s.InFlight.Remove(r.Unit);
        _sentAt.Remove(r.Unit);
        if (r.Unit < 0 || r.Unit >= _units.Length || !r.Indices.SequenceEqual(_units[r.Unit]) || r.Completion.Length != r.Indices.Length || r.Kl.Length != r.Indices.Length)
        {
            _log.Error("scorer {0} returned a malformed result for unit {1}; it will be scored again", r.ScorerId, r.Unit);
            _next = Math.Min(_next, Math.Clamp(r.Unit, 0, _units.Length));
            Dispatch();
            return;
        }
        if (Stored(r.Unit) || _persisting.Contains(r.Unit))
        {
            _log.Info("unit {0} from scorer {1} was stored already; ignored", r.Unit, r.ScorerId);
            Dispatch();
            return;
        }
        _persisting.Add(r.Unit);
        Persist(new ScoresStored(r.Unit, r.Indices, r.Completion, r.Kl), e =>
        {
            _persisting.Remove(e.Unit);
            _table.Add(e.Indices, e.Completion, e.Kl);
            if (_firstNeed[e.Unit] != int.MaxValue) _storedNeeded++;
            Context.Parent.Tell(new ScoresAvailable(e.Indices, e.Completion, e.Kl));
            _log.Debug("unit {0} stored (scorer {1})", e.Unit, r.ScorerId);
            if (LastSequenceNr - _snapshotAt >= Math.Max(MinEventsPerSnapshot, _snapshotCovers))
            {
                _snapshotCovers = LastSequenceNr;
                _snapshotAt = LastSequenceNr;
                SaveSnapshot(_table.ToSnapshot());
            }
            if (!_completeAnnounced && _storedNeeded == _neededUnits)
            {
                _completeAnnounced = true;
                _log.Info("reference scoring of run {0} complete: {1} units", _spec.RunId, _neededUnits);
            }
            Dispatch();
        });
    }

    private ScoringStatus Status() => new(_neededUnits, _storedNeeded,
        [.. _scorers.Where(kv => kv.Value.Reachable).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new ScorerInfo(kv.Key, kv.Value.Actor.Path.Address.ToString(), kv.Value.InFlight.Count))]);

    private ScoresAvailable Available(IEnumerable<int> indices)
    {
        var (idx, completion, kl) = _table.Get(indices);
        return new ScoresAvailable(idx, completion, kl);
    }
}

/// <summary>Timer message: hand out again the units whose scorer has not answered in time.</summary>
internal sealed class CheckOverdue
{
    public static readonly CheckOverdue Instance = new();
}

/// <summary>The training frontier moved: the scorer pool may work up to the window beyond <paramref name="Step"/>.</summary>
public sealed record ScoringFrontier(int Step);

/// <summary>Stored reference log-probs, from the scoring scheduler to the run coordinator.</summary>
public sealed record ScoresAvailable(int[] Indices, double[] Completion, double[] Kl);

/// <summary>Ask the scoring scheduler for its progress.</summary>
public sealed record GetScoringStatus;

/// <summary>Scoring progress: needed and stored units, and the reachable scorers that are ready.</summary>
public sealed record ScoringStatus(int NeededUnits, int StoredUnits, IReadOnlyList<ScorerInfo> Scorers);

/// <summary>A ready scorer: its id, Akka address and the units it was given and has not answered yet.</summary>
public sealed record ScorerInfo(string ScorerId, string Address, int UnitsInFlight);
