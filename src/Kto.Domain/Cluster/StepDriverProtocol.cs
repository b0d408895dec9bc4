namespace Kto.Domain.Cluster;

/// <summary>
/// What the coordinator actor tells the <see cref="StepDriver"/>: a trainer's message, something the actor observed
/// (a process lost, reachability recomputed, an event persisted) or the time passing. Pure data; the actor turns Akka
/// messages into these after the checks that need Akka (the sender is on an Up member, is the registered process).
/// </summary>
public interface IDriverInput;

/// <summary>The journal is recovered and this incarnation (and the run's start, if any) persisted: driving may begin.</summary>
public sealed record DriverReady : IDriverInput;

/// <summary>Trainer <paramref name="Id"/> registered (or registered again).</summary>
/// <param name="Id">The trainer id.</param>
/// <param name="Endpoint">Its ring endpoint (host:port).</param>
/// <param name="HeldStep">Committed steps its weights hold; <see cref="RegisterTrainer.NoState"/> with no run loaded.</param>
/// <param name="NewProcess">The id was known, and this registration comes from another process (a restart): the old process cannot finish an attempt.</param>
/// <param name="Address">Where its process lives (for the log).</param>
public sealed record TrainerRegistration(string Id, string Endpoint, int HeldStep, bool NewProcess, string Address) : IDriverInput;

/// <summary>Trainer <paramref name="Id"/>'s process is gone: terminated, or it refused the run (<paramref name="Refused"/>: the actor logged why).</summary>
public sealed record TrainerGone(string Id, bool Refused) : IDriverInput;

/// <summary>Trainer <paramref name="Id"/> asked to leave (SIGTERM, <c>node drain</c>): it is let go once no attempt needs it.</summary>
public sealed record TrainerLeave(string Id) : IDriverInput;

/// <summary>
/// The trainers left out of step membership now (unreachable by the coordinator's failure detector, or cut off from
/// kept trainers; see <see cref="PartitionSide"/>), each with the reason shown in the log.
/// </summary>
public sealed record TrainersExcluded(IReadOnlyDictionary<string, string> Reasons) : IDriverInput;

/// <summary>A member reported its reduced gradients; <paramref name="Seconds"/> since the step's clock started.</summary>
public sealed record ReductionReported(StepReduced Report, double Seconds) : IDriverInput;

/// <summary>A member's attempt failed (ring error, time-out) without a member being reported lost.</summary>
public sealed record AttemptFailed(StepFailed Failure) : IDriverInput;

/// <summary>The pause after a failed attempt (<see cref="ScheduleRetry"/>) is over.</summary>
public sealed record RetryDue : IDriverInput;

/// <summary>The <see cref="PersistCommit"/> asked for is in the journal; <see cref="StepDriverContext.Run"/> includes it.</summary>
public sealed record CommitPersisted : IDriverInput;

/// <summary>Another event was persisted and applied (operator pause/resume/stop, a checkpoint, an evaluation, the run's completion or start).</summary>
public sealed record RunEventApplied(IRunEvent Event) : IDriverInput;

/// <summary>
/// An operator set a pause point (<c>run pause --at</c>; the actor checked it lies ahead of the committed steps and
/// before the run's end), or cancelled it (<c>run resume</c> before it was reached): <paramref name="At"/> null.
/// </summary>
public sealed record PausePointSet(int? At) : IDriverInput;

/// <summary>An operator asked for a checkpoint (<c>run checkpoint</c>) of a run that is under way.</summary>
public sealed record CheckpointAsked : IDriverInput;

/// <summary>A checkpoint write failed on <paramref name="TrainerId"/>; it is tried again at a step boundary after <paramref name="RetryAt"/>.</summary>
public sealed record CheckpointWriteFailed(string TrainerId, int Step, DateTime RetryAt) : IDriverInput;

/// <summary>A member's evaluation of committed step <paramref name="Step"/> arrived and is recorded (or could not be): the run's end no longer waits for it.</summary>
public sealed record EvaluationArrived(int Step) : IDriverInput;

/// <summary>Reference log-probs arrived from the scorer pool: a step waiting for them may start.</summary>
public sealed record ScoresArrived : IDriverInput;

/// <summary>The periodic check (every second): catch-up deadlines, the end of the run, anything that can start.</summary>
public sealed record DriverTick : IDriverInput;

/// <summary>What the <see cref="StepDriver"/> asks the actor to do, in order.</summary>
public interface IDriverOutput;

/// <summary>Send <paramref name="Message"/> to trainer <paramref name="TrainerId"/>'s registered process.</summary>
public sealed record SendToTrainer(string TrainerId, INodeMessage Message) : IDriverOutput;

/// <summary>Tell trainer <paramref name="TrainerId"/> to take over trainer <paramref name="SourceId"/>'s state of step <paramref name="Step"/> (<see cref="FetchState"/> with the source's path).</summary>
public sealed record FetchStateFrom(string TrainerId, int Step, string SourceId) : IDriverOutput;

/// <summary>Send trainer <paramref name="TrainerId"/> the precomputed reference log-probs of step <paramref name="Step"/> (before its <see cref="StepStart"/>).</summary>
public sealed record SendScores(string TrainerId, int Step) : IDriverOutput;

/// <summary>Persist <paramref name="Commit"/>; then deliver <see cref="CommitPersisted"/>. No replica hears of it before.</summary>
public sealed record PersistCommit(StepCommitted Commit) : IDriverOutput;

/// <summary>Persist <paramref name="Event"/> (a pause the driver decided on); then deliver <see cref="RunEventApplied"/>. Nothing starts before.</summary>
public sealed record PersistRunEvent(IRunEvent Event) : IDriverOutput;

/// <summary>A new commit was announced to its members: print the progress line and write metrics.</summary>
/// <param name="Commit">The commit.</param>
/// <param name="Report">The attempt's first report (its metrics are the commit's).</param>
/// <param name="StragglerWait">Seconds the fastest member waited for the slowest: the spread of the members' time in
/// all-reduces (<see cref="StepReduced.ExchangeSeconds"/>, waits included); 0 with one member.</param>
/// <param name="Slowest">The member with the least time in all-reduces (the one the others waited for), or null with one member.</param>
public sealed record CommitAnnounced(StepCommitted Commit, StepReduced Report, double StragglerWait = 0, string? Slowest = null) : IDriverOutput;

/// <summary>Deliver <see cref="RetryDue"/> after <paramref name="Delay"/>.</summary>
public sealed record ScheduleRetry(TimeSpan Delay) : IDriverOutput;

/// <summary>The trainer left (its leave was granted): stop watching its process.</summary>
public sealed record ForgetTrainer(string TrainerId) : IDriverOutput;

/// <summary>How loud a <see cref="DriverLog"/> line is.</summary>
public enum DriverLogLevel
{
    /// <summary>Normal progress.</summary>
    Info,
    /// <summary>Something the operator should know.</summary>
    Warning,
    /// <summary>Something is wrong.</summary>
    Error,
}

/// <summary>A line for the host's log.</summary>
public sealed record DriverLog(DriverLogLevel Level, string Line) : IDriverOutput;

/// <summary>A line for <c>run tail</c>.</summary>
public sealed record DriverNote(string Line) : IDriverOutput;

/// <summary>The run is over (announced once): complete with its final checkpoint recorded, or stopped.</summary>
public sealed record RunFinished(bool Complete, string Line) : IDriverOutput;

/// <summary>
/// What the driver reads but does not own: the journal's state, the clock, and whether the reference log-probs of a
/// step are in (runs with a scorer pool; the actor's check also tells the pool the frontier).
/// </summary>
/// <param name="Run">The durable state, every persisted event applied.</param>
/// <param name="Now">The time now (UTC).</param>
/// <param name="ScoresReady">Whether step s may start as far as reference log-probs go; null: always.</param>
public sealed record StepDriverContext(RunState Run, DateTime Now, Func<int, bool>? ScoresReady = null);
