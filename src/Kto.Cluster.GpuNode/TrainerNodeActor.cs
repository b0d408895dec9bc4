using Akka.Actor;
using Akka.Event;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// A trainer node's presence in the cluster: registers with the run coordinator (through the singleton proxy) and
/// keeps re-registering until answered, and again whenever the coordinator restarts. Training steps are not driven
/// through it yet.
/// </summary>
public sealed class TrainerNodeActor : ReceiveActor, IWithTimers
{
    /// <summary>How often an unanswered registration is repeated.</summary>
    public static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(1);

    private const string RegisterTimer = "register";
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <summary>Creates the actor for trainer <paramref name="trainerId"/>.</summary>
    public TrainerNodeActor(IActorRef coordinator, string trainerId, string dataEndpoint)
    {
        Receive<Tick>(_ => coordinator.Tell(new RegisterTrainer(trainerId, dataEndpoint, HeldStep: -1)));
        Receive<TrainerRegistered>(r =>
        {
            Timers.Cancel(RegisterTimer);
            _log.Info("registered with the coordinator: {0} committed steps, incarnation {1}, {2} trainers", r.CommittedSteps, r.Incarnation, r.Trainers);
        });
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props of the actor.</summary>
    public static Props Props(IActorRef coordinator, string trainerId, string dataEndpoint)
        => Akka.Actor.Props.Create(() => new TrainerNodeActor(coordinator, trainerId, dataEndpoint));

    /// <inheritdoc />
    protected override void PreStart() => Timers.StartPeriodicTimer(RegisterTimer, Tick.Instance, TimeSpan.Zero, RegisterInterval);

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }
}
