using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>The step driver: membership, rounds, commits, joins by state transfer, leaves and checkpoints.</summary>
public sealed partial class RunCoordinatorActor
{
    /// <summary>How long a trainer may take to load a checkpoint or take over a peer's state before it is left out.</summary>
    public static readonly TimeSpan CatchUpTimeout = TimeSpan.FromMinutes(5);

    /// <summary>How long a new incarnation of a run under way waits for <c>--min-trainers</c> before it goes on with fewer.</summary>
    public static readonly TimeSpan MinTrainersGrace = TimeSpan.FromSeconds(15);

    /// <summary>Pause before retrying a step whose attempt failed without a member being reported lost.</summary>
    public static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(300);

    private const string HousekeepingTimer = "housekeeping";
    private const string RetryTimer = "retry";
    private static readonly TimeSpan HousekeepingInterval = TimeSpan.FromSeconds(1);

    private readonly Dictionary<string, TrainerEntry> _trainers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _unreachable = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTime> _catchingUp = new(StringComparer.Ordinal);
    /// <summary>Trainers taking over a peer's state: from whom, and of which step.</summary>
    private readonly Dictionary<string, (string Source, int Step)> _fetchingFrom = new(StringComparer.Ordinal);
    private StepRound? _round;
    private bool _replay;
    private bool _committing;
    private int? _pauseAt; // run pause --at: the committed-step count to pause at (in memory only)
    private bool _retryPending;
    private bool _finishedAnnounced;
    private long _generation;
    private int _minTrainers;
    private DateTime _readyAt;
    private (long Generation, string Layout)? _ring;
    private StepReduced? _lastReport;
    private KtoConfig? _config;
    private ClusterMetricsLog? _metrics;
    private readonly Stopwatch _stepClock = new();
    private readonly int _scoringWindow;
    private IActorRef? _scoring;
    private ReferenceScoreTable? _scores;
    private int _waitingForScores = -1;
    private BatchPlan? _plan;
    private (int Step, int[] Examples)? _stepExamples;
    private (int Step, string TrainerId, DateTime Deadline)? _finalCheckpoint;
    /// <summary>An evaluation asked of a member and not answered yet: the run's end waits for it (while its trainer lives and the deadline holds).</summary>
    private (int Step, string TrainerId, DateTime Deadline)? _pendingEvaluation;
    private readonly List<(long Seq, string Line)> _recent = [];
    private long _recentSeq;
    private bool _checkpointRequested;

    /// <summary>Recent event lines kept for <c>run tail</c>.</summary>
    private const int RecentCapacity = 1000;

    private sealed class TrainerEntry(IActorRef actor, string endpoint, int heldStep)
    {
        public IActorRef Actor { get; set; } = actor;
        public string Endpoint { get; set; } = endpoint;
        public int HeldStep { get; set; } = heldStep;
        public bool Leaving { get; set; }
    }

    private void StepCommands()
    {
        Command<RegisterTrainer>(Register);
        Command<StepReduced>(OnReduced);
        Command<StepFailed>(f =>
        {
            if (_round is not { } r || _committing || r.Step != f.Step || r.Generation != f.Generation) return;
            Log.Info("step {0} generation {1}: {2} failed ({3}); retrying", f.Step, f.Generation, f.TrainerId, f.Reason);
            Abort(r);
            _retryPending = true;
            Timers.StartSingleTimer(RetryTimer, Retry.Instance, RetryDelay);
        });
        Command<Retry>(_ =>
        {
            _retryPending = false;
            Pump();
        });
        Command<CheckpointWritten>(OnCheckpointWritten);
        Command<EvaluationDone>(OnEvaluationDone);
        Command<TrainerRefused>(r =>
        {
            _duplicates.Remove(Sender);
            // Only the registered process is removed (a refused second process with the same id leaves the holder alone).
            if (!_trainers.TryGetValue(r.TrainerId, out var t) || !t.Actor.Equals(Sender)) return;
            Log.Error("trainer {0} refused run {1} and leaves: {2}", r.TrainerId, r.RunId, r.Reason);
            Note($"trainer {r.TrainerId} refused the run: {r.Reason}");
            _trainers.Remove(r.TrainerId);
            Context.Unwatch(t.Actor);
            _unreachable.Remove(r.TrainerId);
            Lost(r.TrainerId);
        });
        Command<GetRecentLines>(g => Sender.Tell(new RecentLines(RecentAfter(g.After))));
        Command<RequestCheckpoint>(_ =>
        {
            if (_state.Spec is null) Sender.Tell(new CommandRejected("no run has started"));
            else if (_state.Phase is RunPhase.Completed or RunPhase.Stopped) Sender.Tell(new CommandRejected($"the run is {_state.Phase}; its latest checkpoint is {_state.LatestCheckpoint?.Path ?? "none"}"));
            else
            {
                _checkpointRequested = true;
                Sender.Tell(new RunStateReply(_state));
                Pump();
            }
        });
        Command<DrainTrainer>(d =>
        {
            if (!_trainers.ContainsKey(d.TrainerId))
            {
                Sender.Tell(new CommandRejected($"no trainer \"{d.TrainerId}\" is registered; registered: {string.Join(", ", _trainers.Keys.Order(StringComparer.Ordinal))}"));
                return;
            }
            Self.Tell(new TrainerLeaving(d.TrainerId));
            Sender.Tell(new RunStateReply(_state));
        });
        Command<RegisterScorer>(r =>
        {
            if (!OnUpMember(Sender)) return;
            if (Scoring() is { } scoring) scoring.Forward(r);
            else Sender.Tell(new ScorerRegistered(r.ScorerId, null, _state.Spec is { } spec
                ? $"run {spec.RunId} does not precompute reference log-probs (its trainers score with a live reference)"
                : "no run has started yet"));
        });
        Command<ScoresAvailable>(a =>
        {
            _scores!.Add(a.Indices, a.Completion, a.Kl);
            Pump();
        });
        Command<GetScoringStatus>(g =>
        {
            if (Scoring() is { } scoring) scoring.Forward(g);
            else Sender.Tell(new ScoringStatus(0, 0, []));
        });
        Command<TrainerLeaving>(l =>
        {
            if (!_trainers.TryGetValue(l.TrainerId, out var t)) return;
            t.Leaving = true;
            Log.Info("trainer {0} is leaving{1}", l.TrainerId, _round?.Needs(l.TrainerId) == true ? " after the current step" : "");
            Note($"trainer {l.TrainerId} is leaving");
            Pump();
        });
        Command<Housekeeping>(_ =>
        {
            foreach (var (id, deadline) in _catchingUp.Where(kv => kv.Value < DateTime.UtcNow).ToList())
            {
                _catchingUp.Remove(id);
                _fetchingFrom.Remove(id);
                Log.Warning("trainer {0} did not catch up within {1}; left out until it registers again", id, CatchUpTimeout);
                if (_trainers.TryGetValue(id, out var t)) t.HeldStep = RegisterTrainer.NoState;
            }
            if (_failing.ContainsKey(MetricsStorage)) FlushMetrics();
            UpdateReachability();
            CheckFinished();
            Pump();
        });
        Command<ClusterEvent.UnreachableMember>(_ => UpdateReachability());
        Command<ClusterEvent.ReachableMember>(_ => UpdateReachability());
        Command<PeersUnreachable>(p =>
        {
            if (!_trainers.TryGetValue(p.TrainerId, out var t) || !t.Actor.Path.Address.Equals(Sender.Path.Address)) return;
            bool changed = !_peerReports.TryGetValue(p.TrainerId, out var before) || !before.SequenceEqual(p.Addresses, StringComparer.Ordinal);
            _peerReports[p.TrainerId] = p.Addresses;
            if (changed) UpdateReachability();
        });
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ClusterEvent.CurrentClusterState>(_ => { });
        Command<Terminated>(t =>
        {
            string? lost = _trainers.FirstOrDefault(kv => kv.Value.Actor.Equals(t.ActorRef)).Key;
            if (lost is null) return;
            _trainers.Remove(lost);
            _unreachable.Remove(lost);
            Log.Info("trainer {0} lost ({1} trainers)", lost, _trainers.Count);
            Note($"trainer {lost} lost ({_trainers.Count} trainers)");
            Lost(lost);
        });
    }

    /// <summary>After the incarnation (and the run's start) are persisted: ask trainers to register, start driving.</summary>
    private void OnReady()
    {
        _ready = true;
        _readyAt = DateTime.UtcNow;
        if (_state.Phase == RunPhase.Stopped && _state.LatestCheckpoint?.Step != _state.CommittedSteps) _checkpointRequested = true;
        AskNodesToRegister();
        FlushMetrics();
        Pump();
    }

    /// <summary>Asks every trainer and scorer node of the cluster to register (again): after recovery, and when a run starts (nodes registered before it must load it).</summary>
    private void AskNodesToRegister()
    {
        if (!InCluster) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        foreach (Member m in cluster.State.Members.Where(m => m.HasRole(ClusterRoles.Trainer)))
            Context.ActorSelection(new RootActorPath(m.Address) / "user" / ClusterRoles.TrainerActor).Tell(new Reregister(_state.Incarnation));
        foreach (Member m in cluster.State.Members.Where(m => m.HasRole(ClusterRoles.Scorer)))
            Context.ActorSelection(new RootActorPath(m.Address) / "user" / ClusterRoles.ScorerActor).Tell(new Reregister(_state.Incarnation));
    }

    /// <summary>
    /// Whether <paramref name="who"/> lives on a member that is Up. Only Up members are watched by the cluster's failure
    /// detector, so a node is answered (and can enter steps) only from then on; until then it keeps asking.
    /// </summary>
    private bool OnUpMember(IActorRef who)
    {
        if (!InCluster) return true;
        Address address = who.Path.Address;
        if (address.HasLocalScope) return true; // a node role on the coordinator's own process
        return Akka.Cluster.Cluster.Get(Context.System).State.Members.Any(m => m.Address.Equals(address) && m.Status == MemberStatus.Up);
    }

    /// <summary>
    /// How long a second process registering with a live trainer's id (from another address) is kept waiting before it
    /// is refused: time enough for the failure detector to report the first one gone if it died (a trainer restarted
    /// on another port).
    /// </summary>
    public static readonly TimeSpan DuplicateIdGrace = TimeSpan.FromSeconds(10);

    /// <summary>Processes that registered with an id a live trainer holds: since when.</summary>
    private readonly Dictionary<IActorRef, DateTime> _duplicates = [];

    /// <summary>
    /// Whether the sender is a second process using <paramref name="id"/> while the trainer registered under
    /// it lives elsewhere and is reachable: it is not merged into that trainer; after <see cref="DuplicateIdGrace"/> it
    /// is refused (the node exits 2). A process at the same address (a restart on the same port) replaces the old one.
    /// </summary>
    private bool IsDuplicate(string id, TrainerEntry known)
    {
        if (known.Actor.Equals(Sender) || known.Actor.Path.Address.Equals(Sender.Path.Address) || _unreachable.Contains(id))
        {
            _duplicates.Remove(Sender);
            return false;
        }
        DateTime now = DateTime.UtcNow;
        if (!_duplicates.TryGetValue(Sender, out DateTime since))
        {
            _duplicates[Sender] = since = now;
            Log.Warning("a second process registers as trainer {0} from {1} while the trainer at {2} holds that id; refused unless that one is gone within {3} s",
                id, Sender.Path.Address, known.Actor.Path.Address, DuplicateIdGrace.TotalSeconds);
        }
        if (now - since >= DuplicateIdGrace)
        {
            _duplicates.Remove(Sender);
            string reason = $"trainer id {id} is in use by a live trainer at {known.Actor.Path.Address}; give this node another --node-id";
            Log.Error("refused {0}: {1}", Sender.Path.Address, reason);
            Note($"refused a second process with trainer id {id} at {Sender.Path.Address}");
            Sender.Tell(new TrainerRefused(id, _state.Spec?.RunId ?? "", reason));
        }
        return true;
    }

    private void Register(RegisterTrainer r)
    {
        if (!OnUpMember(Sender)) return;
        if (_trainers.TryGetValue(r.TrainerId, out var holder) && IsDuplicate(r.TrainerId, holder)) return;
        bool changed = true;
        if (_trainers.TryGetValue(r.TrainerId, out var known))
        {
            changed = !known.Actor.Equals(Sender) || known.Endpoint != r.DataEndpoint || known.HeldStep != r.HeldStep || _catchingUp.ContainsKey(r.TrainerId);
            if (!known.Actor.Equals(Sender))
            {
                Context.Unwatch(known.Actor);
                _unreachable.Remove(r.TrainerId);
                if (_round?.Needs(r.TrainerId) == true && !_committing) Lost(r.TrainerId); // a restarted process cannot finish the old attempt
            }
            known.Actor = Sender;
            known.Endpoint = r.DataEndpoint;
            known.HeldStep = r.HeldStep;
        }
        else
        {
            _trainers[r.TrainerId] = new TrainerEntry(Sender, r.DataEndpoint, r.HeldStep);
            Note($"trainer {r.TrainerId} joined at {Sender.Path.Address} ({_trainers.Count} trainers)");
        }
        _catchingUp.Remove(r.TrainerId);
        _fetchingFrom.Remove(r.TrainerId);
        Context.Watch(Sender);
        // A trainer repeats its registration until answered: only a change is worth a line.
        if (changed) Log.Info("trainer {0} registered at {1} holding step {2} ({3} trainers)", r.TrainerId, r.DataEndpoint, r.HeldStep, _trainers.Count);
        Sender.Tell(new TrainerRegistered(r.TrainerId, _state.CommittedSteps, _state.Incarnation, _trainers.Count, _state.Spec));
        Pump();
    }

    /// <summary>Per trainer, the addresses of the other trainers its own failure detector finds unreachable (<see cref="PeersUnreachable"/>).</summary>
    private readonly Dictionary<string, string[]> _peerReports = new(StringComparer.Ordinal);

    /// <summary>Trainers left out because they cannot reach trainers that were kept: since when (they are downed after <see cref="Kto.Cluster.Core.Downing.DowningPolicy.DownAfter"/>).</summary>
    private readonly Dictionary<string, DateTime> _cutOffSince = new(StringComparer.Ordinal);

    /// <summary>
    /// Recomputes which trainers are left out of step membership: those this coordinator's own failure detector finds
    /// unreachable (the cluster's gossip where it does not monitor them), and, among the rest, those cut off from other
    /// trainers, keeping one side (<see cref="PartitionSide"/>; trainers holding the newest step first, then by id).
    /// A member that some trainer reports unreachable is not left out for that alone: in a split between trainers every
    /// trainer is reported by someone, and leaving all of them out would stall the run. A trainer left out for a cut for
    /// <see cref="Kto.Cluster.Core.Downing.DowningPolicy.DownAfter"/> is downed: its host joins again, and rejoins the
    /// steps once the network lets it.
    /// </summary>
    private void UpdateReachability()
    {
        if (!InCluster) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var gossip = cluster.State.Unreachable.Select(m => m.Address).ToHashSet();
        bool Unreachable(Address a) => !a.HasLocalScope && (cluster.FailureDetector.IsMonitoring(a) ? !cluster.FailureDetector.IsAvailable(a) : gossip.Contains(a));
        var own = _trainers.Where(kv => Unreachable(kv.Value.Actor.Path.Address)).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        var idOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (id, t) in _trainers) idOf[t.Actor.Path.Address.ToString()] = id;
        foreach (string gone in _peerReports.Keys.Where(id => !_trainers.ContainsKey(id)).ToList()) _peerReports.Remove(gone);
        var cuts = _peerReports.Where(kv => !own.Contains(kv.Key))
            .SelectMany(kv => kv.Value.Where(idOf.ContainsKey).Select(a => (A: kv.Key, B: idOf[a])))
            .Where(c => !own.Contains(c.B)).ToList();
        var priority = _trainers.Where(kv => !own.Contains(kv.Key))
            .OrderByDescending(kv => kv.Value.HeldStep).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key).ToList();
        var cutOff = PartitionSide.LeftOut(priority, cuts).ToHashSet(StringComparer.Ordinal);
        var excluded = own.Union(cutOff).ToHashSet(StringComparer.Ordinal);

        var newlyOut = excluded.Where(id => !_unreachable.Contains(id)).Order(StringComparer.Ordinal).ToList();
        var backIn = _unreachable.Where(id => _trainers.ContainsKey(id) && !excluded.Contains(id)).Order(StringComparer.Ordinal).ToList();
        _unreachable.Clear();
        _unreachable.UnionWith(excluded);
        foreach (string id in backIn)
        {
            Log.Info("trainer {0} reachable again ({1} usable trainers)", id, _trainers.Count - _unreachable.Count);
            Note($"trainer {id} reachable again");
        }
        foreach (string id in newlyOut)
        {
            string why = own.Contains(id) ? "unreachable"
                : $"cut off from trainer(s) {string.Join(",", cuts.Where(c => c.A == id || c.B == id).Select(c => c.A == id ? c.B : c.A).Where(p => !excluded.Contains(p)).Distinct().Order(StringComparer.Ordinal))}, which are kept";
            Log.Info("trainer {0} {1}: excluded from step membership ({2} usable trainers)", id, why, _trainers.Count - _unreachable.Count);
            Note($"trainer {id} {why}: excluded from step membership");
            Lost(id);
        }

        DateTime now = DateTime.UtcNow;
        foreach (string id in _cutOffSince.Keys.Where(id => !cutOff.Contains(id)).ToList()) _cutOffSince.Remove(id);
        foreach (string id in cutOff)
        {
            if (!_cutOffSince.TryGetValue(id, out DateTime since)) _cutOffSince[id] = since = now;
            if (now - since < Kto.Cluster.Core.Downing.DowningPolicy.DownAfter) continue;
            _cutOffSince.Remove(id);
            Address address = _trainers[id].Actor.Path.Address;
            Log.Warning("downing {0}: trainer {1} cut off from kept trainers for {2:0.0} s; it joins again", address, id, (now - since).TotalSeconds);
            cluster.Down(address);
        }
        Pump();
    }

    /// <summary>A trainer can no longer take part: an attempt that needs it is aborted and retried with the others.</summary>
    private void Lost(string id)
    {
        _catchingUp.Remove(id);
        _fetchingFrom.Remove(id);
        foreach (string fetcher in _fetchingFrom.Where(kv => kv.Value.Source == id).Select(kv => kv.Key).ToList()) Refetch(fetcher);
        if (_round is { } r && r.Needs(id) && !_committing)
        {
            Log.Info("step {0} generation {1}: member {2} lost; retrying with the survivors", r.Step, r.Generation, id);
            Abort(r);
        }
        Pump();
    }

    private void Abort(StepRound r)
    {
        _ring = null; // after any failure the members form a new ring
        foreach (string m in r.Members)
            if (_trainers.TryGetValue(m, out var t)) t.Actor.Tell(new StepAbort(r.Step, r.Generation));
        _round = null;
    }

    /// <summary>Starts whatever can start now: grants leaves, catches trainers up, or starts the next step attempt.</summary>
    private void Pump()
    {
        if (!_ready || _committing) return;
        GrantLeaves();
        if (_round is not null || _retryPending || _catchingUp.Count > 0) return;
        if (_state.Spec is not { } spec) return;
        var usable = _trainers.Where(kv => !_unreachable.Contains(kv.Key) && !kv.Value.Leaving && kv.Value.HeldStep >= 0)
            .OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        // The first step of a new run waits for min-trainers. A run under way waits for them at most MinTrainersGrace
        // after a new incarnation (the trainers of the last one come back within seconds, and a step run by fewer would
        // send the others through a state transfer), then goes on with whoever is there: a trainer that died for good
        // must not hold up a restarted coordinator.
        bool waiting = usable.Count < _minTrainers && (_state.CommittedSteps == 0 || DateTime.UtcNow - _readyAt < MinTrainersGrace);
        if (usable.Count == 0 || waiting) return;
        _minTrainers = 0;
        int committed = _state.CommittedSteps;
        foreach (var (id, t) in usable.Where(kv => kv.Value.HeldStep > committed))
            Log.Error("trainer {0} claims {1} steps, more than the journal's {2}: its weights cannot be trusted; it will be re-synced", id, t.HeldStep, committed);
        var trusted = usable.Where(kv => kv.Value.HeldStep <= committed).ToList();
        if (trusted.Count == 0) return;
        int frontier = trusted.Max(kv => kv.Value.HeldStep);

        if (_state.LatestCheckpoint is { } checkpoint && frontier < checkpoint.Step)
        {
            // No replica holds the run's newest state: every trainer loads the latest checkpoint, then the steps after
            // it are replayed (the plan is a pure function, so the replay reaches the same weights).
            foreach (var (id, t) in usable)
            {
                t.Actor.Tell(new LoadCheckpoint(checkpoint.Path, checkpoint.Step));
                _catchingUp[id] = DateTime.UtcNow + CatchUpTimeout;
            }
            Log.Info("no trainer holds step {0} or later: loading checkpoint {1} on {2} trainers", checkpoint.Step, checkpoint.Path, usable.Count);
            return;
        }
        var synced = trusted.Where(kv => kv.Value.HeldStep == frontier).ToList();
        var behind = usable.Where(kv => kv.Value.HeldStep != frontier).ToList();
        if (_checkpointRequested && behind.Count == 0 && frontier == committed && DateTime.UtcNow >= _checkpointRetryAt) WriteRequestedCheckpoint(synced[0].Key, frontier);
        if (behind.Count > 0)
        {
            for (int i = 0; i < behind.Count; i++)
            {
                IActorRef source = synced[i % synced.Count].Value.Actor;
                behind[i].Value.Actor.Tell(new FetchState(frontier, source.Path.ToStringWithAddress()));
                _catchingUp[behind[i].Key] = DateTime.UtcNow + CatchUpTimeout;
                _fetchingFrom[behind[i].Key] = (synced[i % synced.Count].Key, frontier);
                Log.Info("trainer {0} holds step {1}: fetching the state of step {2} from {3}", behind[i].Key, behind[i].Value.HeldStep, frontier, synced[i % synced.Count].Key);
            }
            return;
        }

        _replay = frontier < committed;
        if (!_replay && !_state.AcceptsSteps)
        {
            RequestFinalCheckpoint(synced.Select(kv => kv.Key).First(), frontier);
            return;
        }
        if (!ScoresReady(frontier)) return;
        _generation = GenerationNumbers.Next(Math.Max(_generation, _state.LastCommit?.Generation ?? 0));
        _round = StepRound.Start(frontier, _generation, synced.Select(kv => kv.Key));
        _lastReport = null;
        string[] ids = [.. synced.Select(kv => kv.Key)], endpoints = [.. synced.Select(kv => kv.Value.Endpoint)];
        string layout = string.Join(",", ids.Zip(endpoints, (id, e) => id + "@" + e));
        if (_ring is not { } ring || ring.Layout != layout) _ring = ring = (_generation, layout);
        var start = new StepStart(frontier, _generation, ids, endpoints, ring.Generation);
        ReferenceScores[] scores = ScoresFor(frontier);
        foreach (var (_, t) in synced)
        {
            foreach (ReferenceScores part in scores) t.Actor.Tell(part);
            t.Actor.Tell(start);
        }
        if (!_stepClock.IsRunning) _stepClock.Restart();
    }

    /// <summary>
    /// The source of <paramref name="fetcher"/>'s state transfer is lost: it fetches at once from another reachable
    /// trainer holding the same step (instead of waiting for its stall time-out while every step waits); with none
    /// left, the next pump decides (another source, or the latest checkpoint).
    /// </summary>
    private void Refetch(string fetcher)
    {
        var (lost, step) = _fetchingFrom[fetcher];
        _fetchingFrom.Remove(fetcher);
        _catchingUp.Remove(fetcher);
        string? next = _trainers.Where(kv => kv.Key != lost && kv.Key != fetcher && !_unreachable.Contains(kv.Key) && !kv.Value.Leaving && kv.Value.HeldStep == step)
            .Select(kv => kv.Key).Order(StringComparer.Ordinal).FirstOrDefault();
        if (next is null || !_trainers.TryGetValue(fetcher, out var t)) return;
        t.Actor.Tell(new FetchState(step, _trainers[next].Actor.Path.ToStringWithAddress()));
        _catchingUp[fetcher] = DateTime.UtcNow + CatchUpTimeout;
        _fetchingFrom[fetcher] = (next, step);
        Log.Info("trainer {0}: its state source {1} is lost; fetching the state of step {2} from {3} instead", fetcher, lost, step, next);
    }

    /// <summary>The scoring scheduler of a run whose reference log-probs come from the scorer pool (created on first use).</summary>
    private IActorRef? Scoring()
    {
        if (_scoring is not null || _state.Spec is not { UsesScorerPool: true } spec || !_ready) return _scoring;
        _scores = new ReferenceScoreTable(spec.ExampleCount);
        _scoring = Context.ActorOf(ReferenceScoresActor.Props(spec, _scoringWindow), "reference-scores");
        Log.Info("run {0} precomputes reference log-probs on the scorer pool (window {1} steps); trainers do not load the reference model", spec.RunId, _scoringWindow);
        return _scoring;
    }

    /// <summary>Whether step <paramref name="step"/> can start as far as reference log-probs go (tells the pool the frontier).</summary>
    private bool ScoresReady(int step)
    {
        if (Scoring() is not { } scoring) return true;
        scoring.Tell(new ScoringFrontier(step));
        if (_scores!.HasAll(StepExamples(step)))
        {
            _waitingForScores = -1;
            return true;
        }
        if (_waitingForScores != step) Log.Info("step {0} waits for its reference log-probs from the scorer pool", step + 1);
        _waitingForScores = step;
        return false;
    }

    /// <summary>The examples of step <paramref name="step"/> (the last step asked for is kept: a waiting step is checked on every pump).</summary>
    private int[] StepExamples(int step)
    {
        if (_stepExamples is { } known && known.Step == step) return known.Examples;
        int[] examples = [.. Plan.Step(step).SelectMany(m => m)];
        _stepExamples = (step, examples);
        return examples;
    }

    private BatchPlan Plan => _plan ??= _state.Spec!.Plan();

    /// <summary>The reference log-probs of a step's examples, in messages of at most <see cref="ReferenceScoring.MaxUnitItems"/> examples.</summary>
    private ReferenceScores[] ScoresFor(int step)
    {
        if (_scores is null) return [];
        var (indices, completion, kl) = _scores.Get(StepExamples(step));
        int n = ReferenceScoring.MaxUnitItems;
        var parts = new List<ReferenceScores>();
        for (int start = 0; start < indices.Length; start += n)
        {
            Range part = start..Math.Min(indices.Length, start + n);
            parts.Add(new ReferenceScores(step, indices[part], completion[part], kl[part]));
        }
        return [.. parts];
    }

    /// <summary>
    /// All steps are committed but the final checkpoint is not recorded (its writer was lost right after the commit):
    /// a synced trainer writes it. Asked again of the next synced trainer if no answer comes within the catch-up timeout.
    /// </summary>
    private void RequestFinalCheckpoint(string trainerId, int held)
    {
        if (_state.Spec is not { } spec || _state.Phase != RunPhase.Completed || held != spec.TotalSteps || _state.LatestCheckpoint?.Step == spec.TotalSteps) return;
        if (_finalCheckpoint is { } pending && _trainers.ContainsKey(pending.TrainerId) && !_unreachable.Contains(pending.TrainerId) && pending.Deadline > DateTime.UtcNow) return;
        _finalCheckpoint = (held, trainerId, DateTime.UtcNow + CatchUpTimeout);
        Log.Info("the final checkpoint is missing: trainer {0} writes it", trainerId);
        _trainers[trainerId].Actor.Tell(new WriteCheckpoint(held, Config.OutputDir, Config.SaveTotalLimit ?? 0));
    }

    /// <summary>An operator's checkpoint (<c>run checkpoint</c>), at a step boundary, by a synced trainer.</summary>
    private void WriteRequestedCheckpoint(string trainerId, int step)
    {
        _checkpointRequested = false;
        if (_state.LatestCheckpoint?.Step == step)
        {
            Note($"checkpoint of step {step} exists already: {_state.LatestCheckpoint.Path}");
            return;
        }
        Log.Info("checkpoint of step {0} requested: trainer {1} writes it", step, trainerId);
        _trainers[trainerId].Actor.Tell(new WriteCheckpoint(step, Config.OutputDir, Config.SaveTotalLimit ?? 0));
    }

    /// <summary>
    /// Characters of lines in one <see cref="RecentLines"/> reply at most: the reply must fit Akka.Remote's 128 000-byte
    /// frame (a reply that does not is dropped, and <c>run tail</c> sees no answer) even at 3 UTF-8 bytes a character.
    /// </summary>
    public const int MaxRecentChars = 40_000;

    /// <summary>
    /// The lines after <paramref name="after"/> that fit <see cref="MaxRecentChars"/>: the newest for a first call
    /// (<paramref name="after"/> 0), else the oldest (a follower pages through the rest on its next calls).
    /// </summary>
    private List<(long Seq, string Line)> RecentAfter(long after)
    {
        var newer = _recent.Where(l => l.Seq > after).ToList();
        if (after == 0) newer.Reverse();
        var picked = new List<(long Seq, string Line)>();
        int budget = MaxRecentChars;
        foreach (var l in newer)
        {
            budget -= l.Line.Length + 1;
            if (budget < 0) break;
            picked.Add(l);
        }
        if (after == 0) picked.Reverse();
        return picked;
    }

    /// <summary>Keeps a line for <c>run tail</c>.</summary>
    private void Note(string line)
    {
        _recent.Add((++_recentSeq, $"{DateTime.UtcNow:HH:mm:ss} {line}"));
        if (_recent.Count > RecentCapacity) _recent.RemoveRange(0, _recent.Count - RecentCapacity);
    }

    private void GrantLeaves()
    {
        foreach (var (id, t) in _trainers.Where(kv => kv.Value.Leaving && _round?.Needs(kv.Key) != true).ToList())
        {
            t.Actor.Tell(new LeaveGranted(id));
            Context.Unwatch(t.Actor);
            _trainers.Remove(id);
            _unreachable.Remove(id);
            _catchingUp.Remove(id);
            _fetchingFrom.Remove(id);
            Log.Info("trainer {0} left ({1} trainers)", id, _trainers.Count);
            Note($"trainer {id} left ({_trainers.Count} trainers)");
        }
    }

    private void OnReduced(StepReduced report)
    {
        if (_round is not { } round || _committing) return;
        var (next, outcome) = round.Report(report.TrainerId, report.Step, report.Generation, report.Checksum);
        if (outcome == RoundOutcome.Stale) return;
        _round = next;
        _lastReport ??= report;
        switch (outcome)
        {
            case RoundOutcome.Pending:
                return;
            case RoundOutcome.Mismatch:
                Log.Error("step {0} generation {1}: members reduced different gradients ({2}); retrying", round.Step, round.Generation,
                    string.Join(", ", next.Reports.Select(kv => $"{kv.Key} {kv.Value:x16}")));
                Abort(next);
                _retryPending = true;
                Timers.StartSingleTimer(RetryTimer, Retry.Instance, RetryDelay);
                return;
        }
        if (_replay)
        {
            Announce(next, checkpointDir: null);
            Log.Info("step {0}/{1} replayed (committed before; generation {2}, members {3})", next.Step + 1, _state.Spec!.TotalSteps, next.Generation, string.Join(",", next.Members));
            _round = null;
            Pump();
            return;
        }
        if (!_state.AcceptsSteps)
        {
            // Paused or stopped while the attempt ran: it is not committed (a resume computes the step again).
            Log.Info("step {0} generation {1} not committed: the run is {2}", next.Step + 1, next.Generation, _state.Phase);
            Abort(next);
            return;
        }
        StepCommitted commit = next.ToCommit() with { Metrics = _lastReport!.Metrics, GradNorm = _lastReport.GradNorm, Seconds = _stepClock.Elapsed.TotalSeconds };
        RunState committed = _state.Apply(commit);
        _committing = true;
        Persist(commit, _ =>
        {
            _committing = false;
            Applied(committed);
            KtoConfig c = Config;
            int done = commit.Step + 1;
            bool save = done % c.SaveSteps == 0 || done == _state.Spec!.TotalSteps;
            bool evaluate = KtoEvaluation.Due(c, done, _state.Spec!.TotalSteps, _state.Spec!.Plan().StepsPerEpoch);
            Announce(next, save ? c.OutputDir : null, evaluate);
            if (evaluate) _pendingEvaluation = (done, next.Members[0], DateTime.UtcNow + CatchUpTimeout);
            if (done == _state.Spec!.TotalSteps) _finalCheckpoint = (done, next.Members[0], DateTime.UtcNow + CatchUpTimeout);
            Record(commit, _lastReport!);
            _round = null;
            if (_pauseAt is { } at && _state.CommittedSteps >= at && _state.AcceptsSteps) PauseAtPoint();
            else Pump();
        });
    }

    /// <summary>Sets the committed-step count to pause at; returns why not, or null.</summary>
    private string? SetPausePoint(int at)
    {
        if (_state.Spec is not { } spec) return "run pause --at: the run has not started";
        if (_state.Phase is not (RunPhase.Running or RunPhase.Paused)) return $"run pause --at: not allowed while the run is {_state.Phase}";
        if (at <= _state.CommittedSteps || at >= spec.TotalSteps)
            return $"run pause --at {at}: give a step count above the {_state.CommittedSteps} committed and below the run's {spec.TotalSteps} steps";
        _pauseAt = at;
        Note($"the run will pause once {at} steps are committed (now {_state.CommittedSteps})");
        return null;
    }

    /// <summary>Pauses the run at the point <c>run pause --at</c> set; no step starts before the pause is in the journal.</summary>
    private void PauseAtPoint()
    {
        _pauseAt = null;
        _committing = true;
        var paused = new RunPaused();
        RunState next = _state.Apply(paused);
        Persist(paused, _ =>
        {
            _committing = false;
            Applied(next);
            Log.Info("run paused at {0} committed steps, as run pause --at asked", next.CommittedSteps);
            Note($"run paused at {next.CommittedSteps} committed steps, as run pause --at asked");
            Pump();
        });
    }

    /// <summary>Tells the members to apply an attempt (the first member writes the checkpoint and evaluates, if due).</summary>
    private void Announce(StepRound round, string? checkpointDir, bool evaluate = false)
    {
        for (int i = 0; i < round.Members.Length; i++)
        {
            if (!_trainers.TryGetValue(round.Members[i], out var t)) continue;
            t.Actor.Tell(new StepApply(round.Step, round.Generation, i == 0 ? checkpointDir : null, Config.SaveTotalLimit ?? 0, Evaluate: i == 0 && evaluate));
            t.HeldStep = round.Step + 1;
        }
    }

    /// <summary>Progress line, and metrics.jsonl (a projection of the commits: see <see cref="ClusterMetricsLog"/>).</summary>
    private void Record(StepCommitted commit, StepReduced report)
    {
        RunSpec spec = _state.Spec!;
        int done = commit.Step + 1;
        var figures = MetricVector.To(report.Metrics).ToDictionary();
        _stepClock.Restart();
        string line = string.Create(CultureInfo.InvariantCulture,
            $"step {done}/{spec.TotalSteps} committed: loss {figures.GetValueOrDefault("loss"):0.000000} grad_norm {report.GradNorm:0.000000} members {string.Join(",", commit.Members)} generation {commit.Generation} checksum {commit.Checksum:x16} ({commit.Seconds:0.000} s; member {report.Seconds:0.000} s, exchange {report.ExchangeSeconds:0.000} s, sent {report.BytesSent} B per member) at {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ}");
        Console.WriteLine(line);
        Note(line);
        LogMetrics(commit);
    }

    /// <summary>A member evaluated a committed step: the eval line goes into the journal, then metrics.jsonl (once).</summary>
    private void OnEvaluationDone(EvaluationDone d)
    {
        if (_pendingEvaluation?.Step == d.Step) _pendingEvaluation = null;
        var recorded = new EvaluationRecorded(d.Step, d.Figures);
        RunState next;
        try
        {
            next = _state.Apply(recorded);
        }
        catch (InvalidOperationException e)
        {
            Log.Warning("evaluation of step {0} not recorded: {1}", d.Step, e.Message);
            return;
        }
        Persist(recorded, _ =>
        {
            Applied(next);
            string shown = string.Join(" ", d.Figures.Where(kv => kv.Key is "eval_loss" or "eval_kl" or "eval_rewards/margins")
                .Select(kv => kv.Key + " " + kv.Value.ToString("0.000000", CultureInfo.InvariantCulture)));
            Console.WriteLine($"eval at step {d.Step} by {d.TrainerId}: {shown}");
            Note($"eval at step {d.Step} by {d.TrainerId}: {shown}");
            LogEvaluation(recorded);
            CheckFinished();
        });
    }

    private void OnCheckpointWritten(CheckpointWritten w)
    {
        var saved = new CheckpointSaved(w.Step, w.Path, w.Sha256);
        RunState next;
        try
        {
            next = _state.Apply(saved);
        }
        catch (InvalidOperationException e)
        {
            Log.Warning("checkpoint {0} not recorded: {1}", w.Path, e.Message);
            return;
        }
        Persist(saved, _ =>
        {
            Applied(next);
            if (Resolved(CheckpointStorage)) Note("checkpoint writes work again");
            Log.Info("checkpoint after step {0} recorded: {1}", w.Step, w.Path);
            Note($"checkpoint after step {w.Step} recorded: {w.Path}");
            CheckFinished();
            Pump();
        });
    }

    /// <summary>Announces the end of the run once: complete with its final checkpoint recorded, or stopped.</summary>
    private void CheckFinished()
    {
        if (_finishedAnnounced || _state.Spec is not { } spec) return;
        if (_pendingEvaluation is { } pe)
        {
            if (pe.Deadline > DateTime.UtcNow && _trainers.ContainsKey(pe.TrainerId) && !_unreachable.Contains(pe.TrainerId)) return;
            Log.Warning("the evaluation of step {0} asked of {1} did not arrive; metrics.jsonl has no eval line for it", pe.Step, pe.TrainerId);
            _pendingEvaluation = null;
        }
        bool complete = _state.Phase == RunPhase.Completed && _state.LatestCheckpoint?.Step == spec.TotalSteps;
        if (!complete && _state.Phase != RunPhase.Stopped) return;
        // A stopped run first saves the state it stopped at, if a reachable trainer holds it.
        if (!complete && _state.LatestCheckpoint?.Step != _state.CommittedSteps
            && _trainers.Any(kv => kv.Value.HeldStep == _state.CommittedSteps && !_unreachable.Contains(kv.Key))) return;
        _finishedAnnounced = true;
        string end = complete
            ? $"run {spec.RunId} complete: {spec.TotalSteps} steps; final checkpoint {_state.LatestCheckpoint!.Path}"
            : $"run {spec.RunId} stopped after {_state.CommittedSteps} steps";
        Console.WriteLine(end);
        Note(end);
        _onFinished?.Invoke(_state);
    }

    private KtoConfig Config => _config ??= _state.Spec!.Config();

    private ClusterStatus Status() => new(_state,
        [.. _trainers.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new TrainerStatus(kv.Key, kv.Value.Actor.Path.Address.ToString(), kv.Value.Endpoint,
            kv.Value.HeldStep, Reachable: !_unreachable.Contains(kv.Key), kv.Value.Leaving, CatchingUp: _catchingUp.ContainsKey(kv.Key)))],
        _round?.Step, _round?.Generation, _round is { } r ? [.. r.Members] : [], Warnings(), _pauseAt);

    private sealed class Retry
    {
        public static readonly Retry Instance = new();
    }

    private sealed class Housekeeping
    {
        public static readonly Housekeeping Instance = new();
    }
}
