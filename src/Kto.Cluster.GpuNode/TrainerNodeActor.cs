using Akka.Actor;
using Akka.Event;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// A trainer replica in the cluster. It registers with the run coordinator (through the singleton proxy) until
/// answered, loads the run it is given, and then follows the coordinator's step protocol: <see cref="StepStart"/>
/// (join the attempt's ring, compute the shard, all-reduce, report <see cref="StepReduced"/> or
/// <see cref="StepFailed"/>), <see cref="StepApply"/> (apply a committed attempt, maybe checkpoint) and
/// <see cref="StepAbort"/> (cancel). It serves and fetches replica state in chunks for joins. Long work (loading,
/// a step, loading a checkpoint) runs as one task at a time on the <see cref="TrainerEngine"/>; messages that need the
/// replica wait (stashed) until it ends.
/// </summary>
public sealed class TrainerNodeActor : ReceiveActor, IWithTimers, IWithStash
{
    /// <summary>How often an unanswered registration is repeated.</summary>
    public static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(1);

    /// <summary>A state fetch gives up when no chunk arrived for this long.</summary>
    public static readonly TimeSpan FetchStallTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Chunk requests kept in flight during a state fetch.</summary>
    public const int FetchWindow = 8;

    private const string RegisterTimer = "register";
    private const string FetchTimer = "fetch";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _coordinator;
    private readonly string _trainerId;
    private readonly TrainerEngine _engine;
    private readonly Action? _onLeaveGranted;
    private CancellationTokenSource? _attempt;
    private (int Step, long Generation)? _attemptId;
    /// <summary>The state image being served to a joiner (built on its first request, dropped when the replica moves on).</summary>
    private (int Step, byte[] Image)? _export;
    private Fetch? _fetch;
    /// <summary>The run coordinator this trainer registered with last, and its incarnation: commands from any other are
    /// ignored, so a coordinator that was frozen and replaced cannot start, apply or redirect anything when it wakes.</summary>
    private IActorRef? _registeredWith;
    private int _incarnation;

    /// <summary>Creates the actor for trainer <paramref name="trainerId"/>.</summary>
    public TrainerNodeActor(IActorRef coordinator, string trainerId, TrainerEngine engine, Action? onLeaveGranted = null, Action<string>? onRefused = null)
    {
        _onRefused = onRefused;
        _coordinator = coordinator;
        _trainerId = trainerId;
        _engine = engine;
        _onLeaveGranted = onLeaveGranted;
        Become(Ready);
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <inheritdoc />
    public IStash Stash { get; set; } = null!;

    /// <summary>Props of the actor.</summary>
    /// <param name="coordinator">The coordinator singleton's proxy.</param>
    /// <param name="trainerId">This trainer's id.</param>
    /// <param name="engine">The replica it drives.</param>
    /// <param name="onLeaveGranted">Called once the coordinator let this trainer go.</param>
    /// <param name="onRefused">Called with the reason when this trainer cannot take part in the run (its data or models
    /// differ); the node host then exits with status 2.</param>
    public static Props Props(IActorRef coordinator, string trainerId, TrainerEngine engine, Action? onLeaveGranted = null, Action<string>? onRefused = null)
        => Akka.Actor.Props.Create(() => new TrainerNodeActor(coordinator, trainerId, engine, onLeaveGranted, onRefused));

    private readonly Action<string>? _onRefused;

    /// <summary>Pause before loading the run again after a load failure that is not a mismatch.</summary>
    private static readonly TimeSpan LoadRetry = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    protected override void PreStart()
    {
        StartRegistering();
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Timers.StartPeriodicTimer("peers", PeerTick.Instance, PeerCheckInterval);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        _attempt?.Cancel();
        base.PostStop();
    }

    private void StartRegistering() => Timers.StartPeriodicTimer(RegisterTimer, RegisterTick.Instance, TimeSpan.Zero, RegisterInterval);

    private RegisterTrainer Registration() => new(_trainerId, _engine.DataEndpoint, _engine.HeldStep);

    /// <summary>No task runs on the replica.</summary>
    private void Ready()
    {
        Common();
        Receive<TrainerRegistered>(r =>
        {
            if (r.Incarnation < _incarnation)
            {
                _log.Warning("ignored a registration answer from coordinator incarnation {0} at {1}: registered with incarnation {2}", r.Incarnation, Sender.Path, _incarnation);
                return;
            }
            _registeredWith = Sender;
            _incarnation = r.Incarnation;
            Timers.Cancel(RegisterTimer);
            _log.Info("registered with the coordinator: {0} committed steps, incarnation {1}, {2} trainers; holding step {3}",
                r.CommittedSteps, r.Incarnation, r.Trainers, _engine.HeldStep);
            if (r.Spec is null) return;
            if (_engine.Spec is null) LoadRun(r.Spec);
            else if (_engine.Spec != r.Spec) _log.Error("the coordinator runs {0}, but this trainer holds run {1}: restart the node for the new run", r.Spec.RunId, _engine.Spec.RunId);
        });
        Receive<StepStart>(s => FromCoordinator(s), StartStep);
        Receive<StepApply>(a => FromCoordinator(a), ApplyStep);
        Receive<StepAbort>(a => FromCoordinator(a), a =>
        {
            if (_attemptId == (a.Step, a.Generation)) _engine.Discard();
        });
        Receive<WriteCheckpoint>(w => FromCoordinator(w), w =>
        {
            if (_engine.Spec is null || w.Step != _engine.HeldStep)
            {
                _log.Warning("asked for a checkpoint of step {0}, but this trainer holds step {1}", w.Step, _engine.HeldStep);
                return;
            }
            SaveCheckpoint(w.Dir, w.SaveTotalLimit);
        });
        Receive<LoadCheckpoint>(l => FromCoordinator(l), l => RunTask($"loading checkpoint {l.Path}", () => { _engine.RestoreCheckpoint(l.Path); return 0; }, _ => Register()));
        Receive<FetchState>(f => FromCoordinator(f), BeginFetch);
        Receive<StateChunk>(OnChunk);
        Receive<FetchStalled>(_ =>
        {
            if (_fetch is null) return;
            _log.Warning("state transfer of step {0} stalled after {1}/{2} chunks; giving up", _fetch.Step, _fetch.Received, _fetch.Chunks?.Length ?? 0);
            _fetch = null;
            Register();
        });
        Receive<FetchRetry>(_ =>
        {
            if (_fetch is { Chunks: null } f) Context.ActorSelection(f.Source).Tell(new StateRequest(f.Step, 0));
        });
    }

    /// <summary>A task runs on the replica; what needs the replica waits.</summary>
    private void Busy()
    {
        Common();
        Receive<StepAbort>(a => FromCoordinator(a), a =>
        {
            if (_attemptId == (a.Step, a.Generation)) _attempt?.Cancel();
        });
        Receive<TaskDone>(d =>
        {
            Become(Ready);
            d.Then();
            Stash.UnstashAll();
        });
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>Messages handled the same way in every state.</summary>
    private void Common()
    {
        Receive<RegisterTick>(_ => _coordinator.Tell(Registration()));
        Receive<PeerTick>(_ => ReportPeers());
        Receive<Reregister>(r =>
        {
            _log.Info("coordinator incarnation {0} asks trainers to register", r.Incarnation);
            Register();
        });
        Receive<StateRequest>(ServeState);
        Receive<ReferenceScores>(_engine.Supply);
        Receive<LeaveGranted>(_ =>
        {
            _log.Info("leave granted: this trainer is out of every future step");
            _onLeaveGranted?.Invoke();
        });
        Receive<TrainerLeaving>(l => _coordinator.Tell(l));
        // From the coordinator this trainer registered with (or its supervisor, when it stops for good), or from one that
        // never answered it (another process holds this id): a replaced coordinator cannot send it away.
        Receive<TrainerRefused>(r =>
        {
            bool ours = _registeredWith is null || Sender.Equals(_registeredWith) || Sender.Path.Equals(_registeredWith.Path.Parent);
            if (ours) Refuse(r.RunId, r.Reason);
            else _log.Warning("ignored a refusal from {0}: not the coordinator this trainer is registered with", Sender.Path);
        });
    }

    /// <summary>
    /// Whether <paramref name="command"/> comes from the coordinator this trainer registered with last (anything else is
    /// a coordinator that was replaced — frozen past the failure detector, or from an earlier incarnation — and is
    /// ignored with a warning).
    /// </summary>
    private bool FromCoordinator(object command)
    {
        if (_registeredWith is not null && Sender.Equals(_registeredWith)) return true;
        _log.Warning("ignored {0} from {1}: not the coordinator this trainer is registered with (incarnation {2})", command.GetType().Name, Sender.Path, _incarnation);
        return false;
    }

    private void Register()
    {
        _coordinator.Tell(Registration());
        StartRegistering();
    }

    private void LoadRun(RunSpec spec)
    {
        _log.Info("loading run {0}: {1} examples, {2} steps", spec.RunId, spec.ExampleCount, spec.TotalSteps);
        RunTask($"loading run {spec.RunId}", () => { _engine.Load(spec); return 0; }, r =>
        {
            if (r.Error is InvalidDataException mismatch)
            {
                Refuse(spec.RunId, mismatch.Message); // its data or models differ from the run's
                return;
            }
            if (r.Error is not null)
            {
                // Not a mismatch (memory, a passing I/O error): tried again on the next registration answer.
                _log.Error("loading run {0} failed: {1}; trying again in {2} s", spec.RunId, r.Error.Message, LoadRetry.TotalSeconds);
                Timers.StartSingleTimer(RegisterTimer, RegisterTick.Instance, LoadRetry);
                return;
            }
            _log.Info("run {0} loaded; holding step {1}; {2}", spec.RunId, _engine.HeldStep,
                _engine.ReferenceSupplied ? "reference log-probs come from the scorer pool (reference model not loaded)" : "live reference model loaded");
            Register();
        }, reportErrors: false);
    }

    private void StartStep(StepStart s)
    {
        int rank = Array.IndexOf(s.Members, _trainerId);
        if (rank < 0) return;
        if (_engine.Spec is null || s.Step != _engine.HeldStep)
        {
            _coordinator.Tell(new StepFailed(_trainerId, s.Step, s.Generation, $"this trainer holds step {_engine.HeldStep}"));
            Register();
            return;
        }
        var cancel = new CancellationTokenSource();
        _attempt = cancel;
        _attemptId = (s.Step, s.Generation);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double ahead = _engine.TakeAheadSeconds();
        RunTask($"step {s.Step}", () => _engine.Reduce(s, rank, cancel.Token), result =>
        {
            cancel.Dispose();
            if (_attempt == cancel) _attempt = null;
            if (result.Error is null)
            {
                ReducedStep r = result.Value!;
                _coordinator.Tell(new StepReduced(_trainerId, s.Step, s.Generation, r.Checksum, MetricVector.From(r.Metrics), r.GradNorm, clock.Elapsed.TotalSeconds, r.ExchangeSeconds, r.BytesSent, ahead));
            }
            else
            {
                string why = result.Error is OperationCanceledException ? "aborted" : result.Error.Message;
                _log.Info("step {0} generation {1} failed: {2}", s.Step, s.Generation, why);
                _coordinator.Tell(new StepFailed(_trainerId, s.Step, s.Generation, why));
            }
        }, reportErrors: false);
    }

    private void ApplyStep(StepApply a)
    {
        if (_attemptId != (a.Step, a.Generation))
        {
            _log.Error("step {0} generation {1} was committed, but this trainer did not reduce it; registering again", a.Step, a.Generation);
            Register();
            return;
        }
        _attemptId = null;
        _engine.Apply(a.Step, a.Generation);
        _export = null; // the image served to joiners was of the previous step
        if (a.CheckpointDir is { } dir) SaveCheckpoint(dir, a.SaveTotalLimit);
        if (a.Evaluate)
        {
            // On the weights just applied, before any later step (the actor handles one message at a time).
            Dictionary<string, double> figures = _engine.Evaluate();
            _coordinator.Tell(new EvaluationDone(_trainerId, _engine.HeldStep, figures));
        }
    }

    private void SaveCheckpoint(string dir, int saveTotalLimit)
    {
        try
        {
            var (path, sha) = _engine.SaveCheckpoint(dir, saveTotalLimit);
            _coordinator.Tell(new CheckpointWritten(_trainerId, _engine.HeldStep, path, sha));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Error("checkpoint after step {0} failed: {1}", _engine.HeldStep, e.Message);
            _coordinator.Tell(new CheckpointFailed(_trainerId, _engine.HeldStep, e.Message));
        }
    }

    private void ServeState(StateRequest r)
    {
        if (_engine.Spec is null || r.Step != _engine.HeldStep)
        {
            Sender.Tell(new StateChunk(r.Step, r.Index, 0, []));
            return;
        }
        if (_export is not { } e || e.Step != r.Step)
        {
            e = (r.Step, _engine.ExportState());
            _export = e;
        }
        int count = (e.Image.Length + StateChunk.MaxBytes - 1) / StateChunk.MaxBytes;
        if (r.Index < 0 || r.Index >= count) return;
        int offset = r.Index * StateChunk.MaxBytes;
        Sender.Tell(new StateChunk(r.Step, r.Index, count, e.Image.AsSpan(offset, Math.Min(StateChunk.MaxBytes, e.Image.Length - offset)).ToArray()));
    }

    private void BeginFetch(FetchState f)
    {
        if (_engine.Spec is null) return;
        _log.Info("fetching the state of step {0} from {1}", f.Step, f.SourcePath);
        _fetch = new Fetch(f.Step, f.SourcePath);
        Context.ActorSelection(f.SourcePath).Tell(new StateRequest(f.Step, 0));
        Timers.StartSingleTimer(FetchTimer, FetchStalled.Instance, FetchStallTimeout);
    }

    private void OnChunk(StateChunk c)
    {
        if (_fetch is not { } f || c.Step != f.Step) return;
        if (c.Count == 0)
        {
            Timers.StartSingleTimer(FetchTimer + "-retry", FetchRetry.Instance, TimeSpan.FromMilliseconds(200));
            return;
        }
        Timers.StartSingleTimer(FetchTimer, FetchStalled.Instance, FetchStallTimeout);
        if (f.Chunks is null)
        {
            f.Chunks = new byte[c.Count][];
            f.Requested = 1;
        }
        if (c.Index >= f.Chunks.Length || f.Chunks[c.Index] is not null) return;
        f.Chunks[c.Index] = c.Data;
        f.Received++;
        while (f.Requested < f.Chunks.Length && f.Requested - f.Received < FetchWindow)
            Context.ActorSelection(f.Source).Tell(new StateRequest(f.Step, f.Requested++));
        if (f.Received < f.Chunks.Length) return;

        Timers.Cancel(FetchTimer);
        _fetch = null;
        byte[] image = [.. f.Chunks.SelectMany(x => x)];
        RunTask($"taking over the state of step {f.Step}", () => { _engine.ImportState(image); return image.Length; }, r =>
        {
            if (r.Error is null) _log.Info("took over the state of step {0} ({1:0.0} MB in {2} chunks)", f.Step, r.Value / 1e6, f.Chunks.Length);
            else _log.Error("taking over the state of step {0} failed: {1}", f.Step, r.Error.Message);
            Register(); // the coordinator decides again (another source, or a checkpoint)
        }, reportErrors: false);
    }

    /// <summary>This trainer cannot take part in <paramref name="runId"/>: tells the coordinator (which removes it) and the host (which exits 2).</summary>
    private void Refuse(string runId, string reason)
    {
        _log.Error("this trainer cannot take part in run {0}: {1}", runId, reason);
        Timers.Cancel(RegisterTimer);
        _coordinator.Tell(new TrainerRefused(_trainerId, runId, reason));
        _onRefused?.Invoke(reason);
    }

    /// <summary>Runs <paramref name="work"/> as the replica's task; <paramref name="then"/> runs on the actor when it ends.</summary>
    private void RunTask<T>(string what, Func<T> work, Action<T> then) => RunTask(what, work, r =>
    {
        if (r.Error is null) then(r.Value!);
    }, reportErrors: true);

    private void RunTask<T>(string what, Func<T> work, Action<Outcome<T>> then, bool reportErrors)
    {
        IActorRef self = Self;
        ILoggingAdapter log = _log;
        Become(Busy);
        _engine.Run(work).ContinueWith(t =>
        {
            Exception? error = t.Exception?.GetBaseException() ?? (t.IsCanceled ? new OperationCanceledException() : null);
            var outcome = new Outcome<T>(error is null ? t.Result : default, error);
            if (error is not null && reportErrors) log.Error("{0} failed: {1}", what, error.Message);
            self.Tell(new TaskDone(() => then(outcome)));
        }, TaskScheduler.Default);
    }

    private sealed record Outcome<T>(T? Value, Exception? Error);

    private sealed record TaskDone(Action Then);

    private sealed class Fetch(int step, string source)
    {
        public int Step { get; } = step;
        public string Source { get; } = source;
        public byte[][]? Chunks { get; set; }
        public int Requested { get; set; }
        public int Received { get; set; }
    }

    private sealed class RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }

    private sealed class PeerTick
    {
        public static readonly PeerTick Instance = new();
    }

    /// <summary>How often this trainer reads its failure detector's view of the other trainers (its heartbeat interval).</summary>
    public static readonly TimeSpan PeerCheckInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the view is sent to the coordinator when it has not changed (it is sent at once when it does).</summary>
    public static readonly TimeSpan PeerReportInterval = TimeSpan.FromSeconds(2);

    private string[] _peersReported = [];
    private DateTime _peersReportedAt;

    /// <summary>
    /// Tells the coordinator which trainers this node's own failure detector finds unreachable (<see cref="PeersUnreachable"/>):
    /// Akka's gossip says only that someone finds a member unreachable, and the coordinator needs to know who to keep
    /// one side of a split between trainers.
    /// </summary>
    private void ReportPeers()
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        if (cluster.IsTerminated || cluster.SelfMember.Status is not (Akka.Cluster.MemberStatus.Up or Akka.Cluster.MemberStatus.WeaklyUp)) return;
        var detector = cluster.FailureDetector;
        string[] unreachable = [.. cluster.State.Members
            .Where(m => m.HasRole(Kto.Cluster.Core.ClusterRoles.Trainer) && !m.Address.Equals(cluster.SelfAddress)
                && detector.IsMonitoring(m.Address) && !detector.IsAvailable(m.Address))
            .Select(m => m.Address.ToString()).Order(StringComparer.Ordinal)];
        DateTime now = DateTime.UtcNow;
        if (unreachable.SequenceEqual(_peersReported, StringComparer.Ordinal) && now - _peersReportedAt < PeerReportInterval) return;
        if (!unreachable.SequenceEqual(_peersReported, StringComparer.Ordinal))
            _log.Info(unreachable.Length == 0 ? "every trainer is reachable from here again" : "trainers unreachable from here: {0}", string.Join(", ", unreachable));
        _peersReported = unreachable;
        _peersReportedAt = now;
        _coordinator.Tell(new PeersUnreachable(_trainerId, unreachable));
    }

    private sealed class FetchStalled
    {
        public static readonly FetchStalled Instance = new();
    }

    private sealed class FetchRetry
    {
        public static readonly FetchRetry Instance = new();
    }
}
