using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>
/// The event-sourced owner of a run's truth. Thin by design: every command becomes at most one
/// <see cref="IRunEvent"/>, checked against <see cref="RunState.Apply"/> before it is persisted, applied after, and
/// answered; decisions live in the pure <see cref="RunState"/>. After recovery it persists a new
/// <see cref="CoordinatorIncarnated"/>, so step generations of this incarnation exceed every earlier one.
/// </summary>
public sealed class RunCoordinatorActor : ReceivePersistentActor
{
    /// <summary>A snapshot every this many events: recovery replays at most this many events after the last snapshot.</summary>
    public const int DefaultSnapshotInterval = 200;

    private readonly int _snapshotInterval;
    private RunState _state = RunState.Empty;
    private bool _incarnated;

    /// <summary>Registered trainers (transient: after a restart they re-register).</summary>
    private readonly Dictionary<string, (IActorRef Actor, string DataEndpoint, int HeldStep)> _trainers = new(StringComparer.Ordinal);

    /// <summary>Registered trainers the failure detector currently reports unreachable.</summary>
    private readonly HashSet<string> _unreachable = new(StringComparer.Ordinal);

    /// <summary>Creates the coordinator of run <paramref name="runId"/>.</summary>
    public RunCoordinatorActor(string runId, int snapshotInterval = DefaultSnapshotInterval)
    {
        PersistenceId = PersistenceIdOf(runId);
        _snapshotInterval = snapshotInterval;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RunSnapshot s) _state = s.ToState();
        });
        Recover<IRunEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ => Incarnate());

        Command<StartRun>(c =>
        {
            if (_state.Spec is { } existing)
            {
                if (existing == c.Spec) Sender.Tell(new RunStateReply(_state));
                else Sender.Tell(new CommandRejected($"run {existing.RunId} already started with another spec"));
                return;
            }
            PersistAndReply(new RunStarted(c.Spec));
        });
        Command<CommitStep>(c => PersistAndReply(c.Commit));
        Command<RecordCheckpoint>(c => PersistAndReply(c.Checkpoint));
        Command<PauseRun>(_ => PersistAndReply(new RunPaused()));
        Command<ResumeRun>(_ => PersistAndReply(new RunResumed()));
        Command<StopRun>(_ => PersistAndReply(new RunStopped()));
        Command<GetRunState>(_ => Sender.Tell(new RunStateReply(_state)));
        Command<RegisterTrainer>(Register);
        Command<Akka.Cluster.ClusterEvent.UnreachableMember>(u => MarkAddress(u.Member.Address, reachable: false));
        Command<Akka.Cluster.ClusterEvent.ReachableMember>(r => MarkAddress(r.Member.Address, reachable: true));
        Command<Akka.Cluster.ClusterEvent.IMemberEvent>(_ => { });
        Command<Akka.Cluster.ClusterEvent.CurrentClusterState>(_ => { });
        Command<Terminated>(t =>
        {
            string? lost = _trainers.FirstOrDefault(kv => kv.Value.Actor.Equals(t.ActorRef)).Key;
            if (lost is null) return;
            _trainers.Remove(lost);
            _unreachable.Remove(lost);
            Log.Info("trainer {0} lost ({1} trainers)", lost, _trainers.Count);
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(_ => { });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <summary>The journal id of a run.</summary>
    public static string PersistenceIdOf(string runId) => "kto-run-" + runId;

    /// <inheritdoc />
    public override string PersistenceId { get; }

    /// <summary>Props of the coordinator of <paramref name="runId"/>.</summary>
    public static Props Props(string runId, int snapshotInterval = DefaultSnapshotInterval)
        => Akka.Actor.Props.Create(() => new RunCoordinatorActor(runId, snapshotInterval));

    /// <inheritdoc />
    protected override void PreStart()
    {
        base.PreStart();
        // Step membership reacts to reachability at once, without waiting for the cluster to down a member.
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, Akka.Cluster.ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(Akka.Cluster.ClusterEvent.IReachabilityEvent));
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
            Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private void MarkAddress(Address address, bool reachable)
    {
        foreach (var (id, t) in _trainers.Where(kv => kv.Value.Actor.Path.Address.Equals(address)).ToList())
        {
            if (reachable) _unreachable.Remove(id);
            else _unreachable.Add(id);
            Log.Info(reachable ? "trainer {0} reachable again ({1} usable trainers)" : "trainer {0} unreachable: excluded from step membership ({1} usable trainers)",
                id, _trainers.Count - _unreachable.Count);
        }
    }

    private void Register(RegisterTrainer r)
    {
        if (_trainers.TryGetValue(r.TrainerId, out var old) && !old.Actor.Equals(Sender)) Context.Unwatch(old.Actor);
        _trainers[r.TrainerId] = (Sender, r.DataEndpoint, r.HeldStep);
        Context.Watch(Sender);
        Log.Info("trainer {0} registered at {1} holding step {2} ({3} trainers)", r.TrainerId, r.DataEndpoint, r.HeldStep, _trainers.Count);
        Sender.Tell(new TrainerRegistered(r.TrainerId, _state.CommittedSteps, _state.Incarnation, _trainers.Count));
    }

    /// <summary>Claims the next incarnation once the journal is replayed (commands wait until it is persisted).</summary>
    private void Incarnate()
    {
        if (_incarnated) return;
        _incarnated = true;
        Persist(new CoordinatorIncarnated(_state.Incarnation + 1), persisted =>
        {
            _state = _state.Apply(persisted);
            Log.Info("coordinator ready: run {0}, {1} committed steps, incarnation {2}",
                PersistenceId, _state.CommittedSteps, _state.Incarnation);
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
            _state = next;
            if (_state.Spec is { } spec && _state.Phase == RunPhase.Running && _state.CommittedSteps == spec.TotalSteps)
                Persist(new RunCompleted(spec.TotalSteps), done => _state = _state.Apply(done));
            if (LastSequenceNr % _snapshotInterval == 0) SaveSnapshot(RunSnapshot.Of(_state));
            DeferAsync(0, _ => sender.Tell(new RunStateReply(_state)));
        });
    }
}
