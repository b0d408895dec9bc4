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

/// <summary>
/// The step protocol's plumbing. Its decisions (membership, attempts, retries, commits, catch-up, replay, leaves,
/// pause and stop, checkpoints, the end of the run) are <see cref="StepDriver"/>'s, a pure function of
/// <see cref="StepDriverState"/> and an input; the actor turns Akka messages into <see cref="IDriverInput"/>s after the
/// checks that need Akka (Up members, duplicate ids, reachability) and carries out the <see cref="IDriverOutput"/>s.
/// </summary>
public sealed partial class RunCoordinatorActor
{
    /// <summary>How long a trainer may take to load a checkpoint or take over a peer's state before it is left out (<see cref="StepDriver.CatchUpTimeout"/>).</summary>
    public static readonly TimeSpan CatchUpTimeout = StepDriver.CatchUpTimeout;

    /// <summary>How long a new incarnation of a run under way waits for <c>--min-trainers</c> before it goes on with fewer (<see cref="StepDriver.MinTrainersGrace"/>).</summary>
    public static readonly TimeSpan MinTrainersGrace = StepDriver.MinTrainersGrace;

    private const string HousekeepingTimer = "housekeeping";
    private const string RetryTimer = "retry";
    private static readonly TimeSpan HousekeepingInterval = TimeSpan.FromSeconds(1);

    private StepDriverState _driver;
    /// <summary>The process of each registered trainer (the driver knows trainers by id only).</summary>
    private readonly Dictionary<string, IActorRef> _actors = new(StringComparer.Ordinal);
    private KtoConfig? _config;
    private ClusterMetricsLog? _metrics;
    private readonly Stopwatch _stepClock = new();
    private readonly int _scoringWindow;
    private IActorRef? _scoring;
    private ReferenceScoreTable? _scores;
    private int _waitingForScores = -1;
    private BatchPlan? _plan;
    private (int Step, int[] Examples)? _stepExamples;
    private (int Step, ReferenceScores[] Parts)? _stepScores;
    private readonly List<(long Seq, string Line)> _recent = [];
    private long _recentSeq;

    /// <summary>Recent event lines kept for <c>run tail</c>.</summary>
    private const int RecentCapacity = 1000;

    /// <summary>Hands <paramref name="input"/> to the driver and carries out what it decides, in order.</summary>
    private void Drive(IDriverInput input)
    {
        var context = new StepDriverContext(_state, DateTime.UtcNow, _state.Spec?.UsesScorerPool == true ? ScoresReady : null);
        (_driver, IReadOnlyList<IDriverOutput> outputs) = StepDriver.Handle(_driver, context, input);
        foreach (IDriverOutput output in outputs) Execute(output);
    }

    private void Execute(IDriverOutput output)
    {
        switch (output)
        {
            case SendToTrainer s when _actors.TryGetValue(s.TrainerId, out IActorRef? trainer):
                trainer.Tell(s.Message);
                if (s.Message is StepStart && !_stepClock.IsRunning) _stepClock.Restart();
                break;
            case SendToTrainer:
                break;
            case FetchStateFrom f when _actors.TryGetValue(f.TrainerId, out IActorRef? trainer) && _actors.TryGetValue(f.SourceId, out IActorRef? source):
                trainer.Tell(new FetchState(f.Step, source.Path.ToStringWithAddress()));
                break;
            case FetchStateFrom:
                break;
            case SendScores s when _actors.TryGetValue(s.TrainerId, out IActorRef? trainer):
                foreach (ReferenceScores part in ScoresFor(s.Step)) trainer.Tell(part);
                break;
            case SendScores:
                break;
            case PersistCommit p:
                PersistCommitted(p.Commit);
                break;
            case PersistRunEvent p:
                RunState next = _state.Apply(p.Event);
                Persist(p.Event, e =>
                {
                    Applied(next);
                    Drive(new RunEventApplied(e));
                });
                break;
            case CommitAnnounced a:
                Record(a.Commit, a.Report, a.StragglerWait, a.Slowest);
                break;
            case ScheduleRetry r:
                Timers.StartSingleTimer(RetryTimer, Retry.Instance, r.Delay);
                break;
            case ForgetTrainer f:
                if (_actors.Remove(f.TrainerId, out IActorRef? left)) Context.Unwatch(left);
                break;
            case DriverLog { Level: DriverLogLevel.Error } l:
                Log.Error("{0}", l.Line);
                break;
            case DriverLog { Level: DriverLogLevel.Warning } l:
                Log.Warning("{0}", l.Line);
                break;
            case DriverLog l:
                Log.Info("{0}", l.Line);
                break;
            case DriverNote n:
                Note(n.Line);
                break;
            case RunFinished f:
                Console.WriteLine(f.Line);
                Note(f.Line);
                _onFinished?.Invoke(_state);
                break;
            default:
                throw new InvalidOperationException($"unknown driver output {output.GetType().Name}");
        }
    }

    /// <summary>Persists a commit the driver decided on; only then do the members hear of it (<see cref="CommitPersisted"/>).</summary>
    private void PersistCommitted(StepCommitted commit)
    {
        RunState committed = _state.Apply(commit);
        Persist(commit, _ =>
        {
            Applied(committed);
            Drive(new CommitPersisted());
        });
    }

    private void StepCommands()
    {
        Command<RegisterTrainer>(Register);
        Command<StepReduced>(r => Drive(new ReductionReported(r, _stepClock.Elapsed.TotalSeconds)));
        Command<StepFailed>(f => Drive(new AttemptFailed(f)));
        Command<Retry>(_ => Drive(new RetryDue()));
        Command<CheckpointWritten>(OnCheckpointWritten);
        Command<EvaluationDone>(OnEvaluationDone);
        Command<TrainerRefused>(r =>
        {
            _duplicates.Remove(Sender);
            // Only the registered process is removed (a refused second process with the same id leaves the holder alone).
            if (!_actors.TryGetValue(r.TrainerId, out IActorRef? t) || !t.Equals(Sender)) return;
            Log.Error("trainer {0} refused run {1} and leaves: {2}", r.TrainerId, r.RunId, r.Reason);
            Note($"trainer {r.TrainerId} refused the run: {r.Reason}");
            _actors.Remove(r.TrainerId);
            Context.Unwatch(t);
            Drive(new TrainerGone(r.TrainerId, Refused: true));
        });
        Command<GetRecentLines>(g => Sender.Tell(new RecentLines(RecentAfter(g.After))));
        Command<RequestCheckpoint>(_ =>
        {
            if (_state.Spec is null) Sender.Tell(new CommandRejected("no run has started"));
            else if (_state.Phase is RunPhase.Completed or RunPhase.Stopped) Sender.Tell(new CommandRejected($"the run is {_state.Phase}; its latest checkpoint is {_state.LatestCheckpoint?.Path ?? "none"}"));
            else
            {
                Sender.Tell(new RunStateReply(_state));
                Drive(new CheckpointAsked());
            }
        });
        Command<DrainTrainer>(d =>
        {
            if (!_driver.Trainers.ContainsKey(d.TrainerId))
            {
                Sender.Tell(new CommandRejected($"no trainer \"{d.TrainerId}\" is registered; registered: {string.Join(", ", _driver.Trainers.Keys)}"));
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
            Drive(new ScoresArrived());
        });
        Command<GetScoringStatus>(g =>
        {
            if (Scoring() is { } scoring) scoring.Forward(g);
            else Sender.Tell(new ScoringStatus(0, 0, []));
        });
        Command<TrainerLeaving>(l => Drive(new TrainerLeave(l.TrainerId)));
        Command<Housekeeping>(_ =>
        {
            if (_failing.ContainsKey(MetricsStorage)) FlushMetrics();
            UpdateReachability();
            Drive(new DriverTick());
        });
        Command<ClusterEvent.UnreachableMember>(_ => UpdateReachability());
        Command<ClusterEvent.ReachableMember>(_ => UpdateReachability());
        Command<PeersUnreachable>(p =>
        {
            if (!_actors.TryGetValue(p.TrainerId, out IActorRef? t) || !t.Path.Address.Equals(Sender.Path.Address)) return;
            if (_cuts.Report(p.TrainerId, Sender.Path.Address.ToString(), p.Addresses)) UpdateReachability();
        });
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ClusterEvent.CurrentClusterState>(_ => { });
        Command<Terminated>(t =>
        {
            string? lost = _actors.FirstOrDefault(kv => kv.Value.Equals(t.ActorRef)).Key;
            if (lost is null) return;
            _actors.Remove(lost);
            Drive(new TrainerGone(lost, Refused: false));
        });
    }

    /// <summary>After the incarnation (and the run's start) are persisted: ask trainers to register, start driving.</summary>
    private void OnReady()
    {
        _ready = true;
        AskNodesToRegister();
        FlushMetrics();
        Drive(new DriverReady());
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
    private bool IsDuplicate(string id, IActorRef known)
    {
        if (known.Equals(Sender) || known.Path.Address.Equals(Sender.Path.Address) || _driver.Excluded.Contains(id))
        {
            _duplicates.Remove(Sender);
            return false;
        }
        DateTime now = DateTime.UtcNow;
        if (!_duplicates.TryGetValue(Sender, out DateTime since))
        {
            _duplicates[Sender] = since = now;
            Log.Warning("a second process registers as trainer {0} from {1} while the trainer at {2} holds that id; refused unless that one is gone within {3} s",
                id, Sender.Path.Address, known.Path.Address, DuplicateIdGrace.TotalSeconds);
        }
        if (now - since >= DuplicateIdGrace)
        {
            _duplicates.Remove(Sender);
            string reason = $"trainer id {id} is in use by a live trainer at {known.Path.Address}; give this node another --node-id";
            Log.Error("refused {0}: {1}", Sender.Path.Address, reason);
            Note($"refused a second process with trainer id {id} at {Sender.Path.Address}");
            Sender.Tell(new TrainerRefused(id, _state.Spec?.RunId ?? "", reason));
        }
        return true;
    }

    private void Register(RegisterTrainer r)
    {
        if (!OnUpMember(Sender)) return;
        _actors.TryGetValue(r.TrainerId, out IActorRef? known);
        if (known is not null && IsDuplicate(r.TrainerId, known)) return;
        bool newProcess = known is not null && !known.Equals(Sender);
        if (newProcess) Context.Unwatch(known!);
        _actors[r.TrainerId] = Sender;
        Context.Watch(Sender);
        Drive(new TrainerRegistration(r.TrainerId, r.DataEndpoint, r.HeldStep, newProcess, Sender.Path.Address.ToString()));
    }

    /// <summary>The trainers' reports of each other (<see cref="PeersUnreachable"/>) and the clocks of those cut off, per incarnation.</summary>
    private readonly TrainerCuts _cuts = new();

    /// <summary>
    /// Recomputes which trainers are left out of step membership (<see cref="TrainerCuts.Evaluate"/>): those this
    /// coordinator's own failure detector finds unreachable (the cluster's gossip where it does not monitor them), and,
    /// among the rest, those cut off from other trainers, keeping one side. A member that some trainer reports
    /// unreachable is not left out for that alone: in a split between trainers every trainer is reported by someone,
    /// and leaving all of them out would stall the run. A trainer left out for a cut for
    /// <see cref="Kto.Cluster.Core.Downing.DowningPolicy.DownAfter"/> is downed: its host joins again, and rejoins the
    /// steps once the network lets it.
    /// </summary>
    private void UpdateReachability()
    {
        if (!InCluster) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var gossip = cluster.State.Unreachable.Select(m => m.Address).ToHashSet();
        bool Unreachable(Address a) => !a.HasLocalScope && (cluster.FailureDetector.IsMonitoring(a) ? !cluster.FailureDetector.IsAvailable(a) : gossip.Contains(a));
        var trainers = _driver.Trainers
            .Select(kv => (Kv: kv, Address: _actors[kv.Key].Path.Address))
            .Select(t => new TrainerReachability(t.Kv.Key, t.Address.ToString(), t.Kv.Value.HeldStep, Unreachable(t.Address)))
            .ToList();
        CutVerdict verdict = _cuts.Evaluate(trainers, DateTime.UtcNow, Kto.Cluster.Core.Downing.DowningPolicy.DownAfter);
        var excluded = verdict.Excluded.Keys.ToHashSet(StringComparer.Ordinal);
        if (!excluded.SetEquals(_driver.Excluded)) Drive(new TrainersExcluded(verdict.Excluded));
        foreach (CutOffDowning d in verdict.Downing)
        {
            Log.Warning("downing {0}: trainer {1} cut off from kept trainers for {2:0.0} s; it joins again", d.Address, d.Id, d.For.TotalSeconds);
            cluster.Down(Address.Parse(d.Address));
        }
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

    /// <summary>The reference log-probs of a step's examples, in messages of at most <see cref="ReferenceScoring.MaxUnitItems"/> examples (the last step's are kept: every member gets the same).</summary>
    private ReferenceScores[] ScoresFor(int step)
    {
        if (_scores is null) return [];
        if (_stepScores is { } known && known.Step == step) return known.Parts;
        var (indices, completion, kl) = _scores.Get(StepExamples(step));
        int n = ReferenceScoring.MaxUnitItems;
        var parts = new List<ReferenceScores>();
        for (int start = 0; start < indices.Length; start += n)
        {
            Range part = start..Math.Min(indices.Length, start + n);
            parts.Add(new ReferenceScores(step, indices[part], completion[part], kl[part]));
        }
        _stepScores = (step, [.. parts]);
        return _stepScores.Value.Parts;
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

    /// <summary>Sets the committed-step count to pause at; returns why not, or null.</summary>
    private string? SetPausePoint(int at)
    {
        if (_state.Spec is not { } spec) return "run pause --at: the run has not started";
        if (_state.Phase is not (RunPhase.Running or RunPhase.Paused)) return $"run pause --at: not allowed while the run is {_state.Phase}";
        if (at <= _state.CommittedSteps || at >= spec.TotalSteps)
            return $"run pause --at {at}: give a step count above the {_state.CommittedSteps} committed and below the run's {spec.TotalSteps} steps";
        Note($"the run will pause once {at} steps are committed (now {_state.CommittedSteps})");
        Drive(new PausePointSet(at));
        return null;
    }

    /// <summary>Progress line, and metrics.jsonl (a projection of the commits: see <see cref="ClusterMetricsLog"/>).</summary>
    private void Record(StepCommitted commit, StepReduced report, double stragglerWait, string? slowest)
    {
        RunSpec spec = _state.Spec!;
        int done = commit.Step + 1;
        var figures = MetricVector.To(report.Metrics).ToDictionary();
        _stepClock.Restart();
        string line = string.Create(CultureInfo.InvariantCulture,
            $"step {done}/{spec.TotalSteps} committed: loss {figures.GetValueOrDefault("loss"):0.000000} grad_norm {report.GradNorm:0.000000} members {string.Join(",", commit.Members)} generation {commit.Generation} checksum {commit.Checksum:x16} ({commit.Seconds:0.000} s; member {report.Seconds:0.000} s, exchange {report.ExchangeSeconds:0.000} s, straggler wait {stragglerWait:0.000} s{(slowest is null ? "" : $" (slowest {slowest})")}, sent {report.BytesSent} B per member) at {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ}");
        Console.WriteLine(line);
        Note(line);
        LogMetrics(commit);
    }

    /// <summary>A member evaluated a committed step: the eval line goes into the journal, then metrics.jsonl (once).</summary>
    private void OnEvaluationDone(EvaluationDone d)
    {
        var recorded = new EvaluationRecorded(d.Step, d.Figures);
        RunState next;
        try
        {
            next = _state.Apply(recorded);
        }
        catch (InvalidOperationException e)
        {
            Log.Warning("evaluation of step {0} not recorded: {1}", d.Step, e.Message);
            Drive(new EvaluationArrived(d.Step));
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
            Drive(new EvaluationArrived(d.Step)); // the run's end waits for it: only now is it in the journal and metrics.jsonl
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
            Drive(new RunEventApplied(saved));
        });
    }

    private KtoConfig Config => _config ??= _state.Spec!.Config();

    private ClusterStatus Status() => new(_state,
        [.. _driver.Trainers.Select(kv => new TrainerStatus(kv.Key, _actors[kv.Key].Path.Address.ToString(), kv.Value.Endpoint,
            kv.Value.HeldStep, Reachable: !_driver.Excluded.Contains(kv.Key), kv.Value.Leaving, kv.Value.CatchingUp))],
        _driver.Round?.Step, _driver.Round?.Generation, _driver.Round is { } r ? [.. r.Members] : [], Warnings(), _driver.PauseAt);

    private sealed class Retry
    {
        public static readonly Retry Instance = new();
    }

    private sealed class Housekeeping
    {
        public static readonly Housekeeping Instance = new();
    }
}
