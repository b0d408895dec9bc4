using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>
/// The event-sourced owner of a run's truth, and the driver of its steps. Durable decisions are thin: every command
/// becomes at most one <see cref="IRunEvent"/>, checked against <see cref="RunState.Apply"/> before it is persisted,
/// applied after, and answered. After recovery it persists a new <see cref="CoordinatorIncarnated"/>, so step
/// generations of this incarnation exceed every earlier one. The step driver (the other part of this class) keeps
/// transient membership and one <see cref="StepRound"/> at a time, and persists <see cref="StepCommitted"/> before
/// any replica is told to apply it.
/// </summary>
public sealed partial class RunCoordinatorActor : ReceivePersistentActor, IWithTimers
{
    /// <summary>A snapshot every this many events: recovery replays at most this many events after the last snapshot.</summary>
    public const int DefaultSnapshotInterval = 200;

    private readonly int _snapshotInterval;
    private readonly RunSpec? _startSpec;
    private readonly Action<RunState>? _onFinished;
    private readonly Action<RunState>? _onChanged;
    private readonly Action<string>? _onRefused;
    private RunState _state = RunState.Empty;
    private bool _incarnated;
    private bool _ready;

    /// <summary>Creates the coordinator of run <paramref name="runId"/>.</summary>
    /// <param name="runId">The run (and journal) id.</param>
    /// <param name="snapshotInterval">Events between snapshots.</param>
    /// <param name="startSpec">The run to start once recovered, if the journal holds none yet.</param>
    /// <param name="onFinished">Called once the run is complete (final checkpoint recorded) or stopped.</param>
    /// <param name="minTrainers">Trainers that must be ready before the run's first step; a later incarnation waits for them at most <see cref="MinTrainersGrace"/>.</param>
    /// <param name="scoringWindow">Steps the scorer pool may work ahead of training (runs with precompute_ref_log_probs).</param>
    /// <param name="onChanged">Called with the state after every persisted event (the host's exit status reads it).</param>
    /// <param name="onRefused">Called with a one-line reason when the run cannot be driven as given (a start spec that
    /// differs from the journal's); the coordinator then drives nothing.</param>
    public RunCoordinatorActor(string runId, int snapshotInterval = DefaultSnapshotInterval, RunSpec? startSpec = null, Action<RunState>? onFinished = null, int minTrainers = 1,
        int scoringWindow = ReferenceScoresActor.DefaultWindow, Action<RunState>? onChanged = null, Action<string>? onRefused = null)
    {
        _onChanged = onChanged;
        _onRefused = onRefused;
        _driver = StepDriverState.Empty with { MinTrainers = minTrainers };
        _scoringWindow = scoringWindow;
        PersistenceId = PersistenceIdOf(runId);
        _snapshotInterval = snapshotInterval;
        _startSpec = startSpec;
        _onFinished = onFinished;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RunSnapshot s) _state = s.ToState();
        });
        Recover<IRunEvent>(e =>
        {
            _state = _state.Apply(e);
            if (e is StepCommitted commit) LogMetrics(commit);
            if (e is EvaluationRecorded evaluation) LogEvaluation(evaluation);
        });
        Recover<RecoveryCompleted>(_ => Incarnate());

        Command<StartRun>(c =>
        {
            if (_state.Spec is { } existing)
            {
                if (existing.Differences(c.Spec).Count == 0) Sender.Tell(new RunStateReply(_state));
                else Sender.Tell(new CommandRejected($"run {existing.RunId} already started with another spec"));
                return;
            }
            RunStartedFromCheckpoint? from;
            try
            {
                from = ClusterResume.Point(c.Spec);
            }
            catch (InvalidDataException e)
            {
                Sender.Tell(new CommandRejected(e.Message));
                return;
            }
            if (from is null)
            {
                PersistAndReply(new RunStarted(c.Spec));
                return;
            }
            IActorRef sender = Sender;
            StartRunFrom(c.Spec, from, () =>
            {
                AskNodesToRegister();
                sender.Tell(new RunStateReply(_state));
                Drive(new RunEventApplied(new RunStarted(c.Spec)));
            });
        });
        Command<CommitStep>(c => PersistAndReply(c.Commit));
        Command<RecordCheckpoint>(c => PersistAndReply(c.Checkpoint));
        Command<PauseRun>(p =>
        {
            if (p.AtStep is not { } at) PersistAndReply(new RunPaused());
            else if (SetPausePoint(at) is { } refused) Sender.Tell(new CommandRejected(refused));
            else Sender.Tell(new RunStateReply(_state));
        });
        Command<ResumeRun>(_ =>
        {
            if (_state.Phase == RunPhase.Running && _driver.PauseAt is { } at)
            {
                Note($"the pause at {at} committed steps is cancelled (now {_state.CommittedSteps})");
                Drive(new PausePointSet(null));
                Sender.Tell(new PausePointCancelled(at, _state));
            }
            else PersistAndReply(new RunResumed());
        });
        Command<StopRun>(_ => PersistAndReply(new RunStopped()));
        Command<GetRunState>(_ => Sender.Tell(new RunStateReply(_state)));
        Command<GetClusterStatus>(_ => Sender.Tell(Status()));
        StepCommands();
        StorageCommands();
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(_ => { });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <summary>The journal id of a run.</summary>
    public static string PersistenceIdOf(string runId) => "kto-run-" + runId;

    /// <inheritdoc />
    public override string PersistenceId { get; }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props of the coordinator of <paramref name="runId"/>.</summary>
    public static Props Props(string runId, int snapshotInterval = DefaultSnapshotInterval, RunSpec? startSpec = null, Action<RunState>? onFinished = null, int minTrainers = 1,
        int scoringWindow = ReferenceScoresActor.DefaultWindow, Action<RunState>? onChanged = null, Action<string>? onRefused = null)
        => Akka.Actor.Props.Create(() => new RunCoordinatorActor(runId, snapshotInterval, startSpec, onFinished, minTrainers, scoringWindow, onChanged, onRefused));

    /// <inheritdoc />
    protected override void PreStart()
    {
        base.PreStart();
        // Step membership reacts to reachability at once, without waiting for the cluster to down a member.
        if (InCluster)
            Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, Akka.Cluster.ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(Akka.Cluster.ClusterEvent.IReachabilityEvent));
        Timers.StartPeriodicTimer(HousekeepingTimer, Housekeeping.Instance, HousekeepingInterval);
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        if (InCluster) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private bool InCluster => Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal);

    /// <summary>Claims the next incarnation once the journal is replayed (commands wait until it is persisted).</summary>
    private void Incarnate()
    {
        if (_incarnated) return;
        _incarnated = true;
        Persist(new CoordinatorIncarnated(_state.Incarnation + 1, WriterName(Context.System)), persisted =>
        {
            _state = _state.Apply(persisted);
            _onChanged?.Invoke(_state);
            Context.Parent.Tell(new CoordinatorRunning(_state));
            Log.Info("coordinator ready: run {0}, {1} committed steps, incarnation {2}",
                PersistenceId, _state.CommittedSteps, _state.Incarnation);
            if (_startSpec is { } spec && _state.Spec is null)
            {
                RunStartedFromCheckpoint? from;
                try
                {
                    from = ClusterResume.Point(spec);
                }
                catch (InvalidDataException e)
                {
                    Log.Error(e.Message);
                    _onRefused?.Invoke(e.Message);
                    return;
                }
                StartRunFrom(spec, from, OnReady);
                return;
            }
            if (_startSpec is { } given && _state.Spec is { } journal && journal.Differences(given).Count > 0)
            {
                // What is on disk must be what runs: a started run's math is not changed behind its journal's back.
                string refused = $"run {journal.RunId} was started with another config or data than given now; differs: {string.Join(", ", journal.Differences(given))}. " +
                    $"Start it with the config it was started with ({TrainingLoop.RunConfigFile} in its output_dir), or continue it as a new run with the new config: " +
                    $"resume_from_checkpoint \"latest\" (or a checkpoint directory) and another --run-id";
                Log.Error(refused);
                _onRefused?.Invoke(refused);
                return;
            }
            OnReady();
        });
    }

    /// <summary>
    /// Persists the start of <paramref name="spec"/> and the checkpoint it continues from, if any, as one atomic write
    /// (a crash between the two must not leave a started run that forgot its checkpoint), then runs <paramref name="then"/>.
    /// </summary>
    private void StartRunFrom(RunSpec spec, RunStartedFromCheckpoint? from, Action then)
    {
        IRunEvent[] events = from is null ? [new RunStarted(spec)] : [new RunStarted(spec), from];
        PersistAll(events, e =>
        {
            _state = _state.Apply(e);
            _onChanged?.Invoke(_state);
            if (e is RunStarted)
                Log.Info("run {0} started: {1} examples, {2} steps of {3} × {4} examples", spec.RunId, spec.ExampleCount, spec.TotalSteps, spec.GlobalBatchSize, spec.Accumulation);
            if (e is RunStartedFromCheckpoint f)
            {
                Log.Info("run {0} continues from checkpoint {1}: {2} steps count as committed", spec.RunId, f.Path, f.Step);
                Note($"run {spec.RunId} continues from checkpoint {f.Path} at step {f.Step}");
            }
            if (ReferenceEquals(e, events[^1])) then();
        });
    }

    private void PersistAndReply(IRunEvent e)
    {
        RunState next;
        try
        {
            next = _state.Apply(e);
        }
        catch (InvalidOperationException rejected)
        {
            Sender.Tell(new CommandRejected(rejected.Message));
            return;
        }
        IActorRef sender = Sender;
        Persist(e, _ =>
        {
            Applied(next);
            if (e is RunPaused or RunResumed or RunStopped) Note($"run {next.Phase.ToString().ToLowerInvariant()} by the operator at {next.CommittedSteps} committed steps");
            if (e is RunStarted) AskNodesToRegister(); // nodes registered before the run started load it
            DeferAsync(0, _ => sender.Tell(new RunStateReply(_state)));
            Drive(new RunEventApplied(e)); // a stopped run saves the state it stopped at before it counts as finished
        });
    }

    /// <summary>Takes over a state whose event was just persisted; completes the run and snapshots when due (the caller then tells the driver).</summary>
    private void Applied(RunState next)
    {
        _state = next;
        _onChanged?.Invoke(_state);
        if (_state.Spec is { } spec && _state.Phase == RunPhase.Running && _state.CommittedSteps == spec.TotalSteps)
            Persist(new RunCompleted(spec.TotalSteps), done =>
            {
                _state = _state.Apply(done);
                _onChanged?.Invoke(_state);
                Drive(new RunEventApplied(done));
            });
        if (LastSequenceNr % _snapshotInterval == 0) SaveSnapshot(RunSnapshot.Of(_state));
    }
}
