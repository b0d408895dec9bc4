using System.Collections.Immutable;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Cluster;

/// <summary>What the step driver knows of one registered trainer.</summary>
/// <param name="Endpoint">Its ring endpoint (host:port).</param>
/// <param name="HeldStep">Committed steps its weights hold (as far as the driver knows); <see cref="RegisterTrainer.NoState"/> with none.</param>
/// <param name="Leaving">It asked to leave: it enters no new attempt.</param>
/// <param name="CatchUpDeadline">While it loads a checkpoint or takes over a peer's state: when it is left out if not done.</param>
/// <param name="FetchingFrom">While it takes over a peer's state: the peer, and the step.</param>
public sealed record DriverTrainer(string Endpoint, int HeldStep, bool Leaving = false, DateTime? CatchUpDeadline = null, (string Source, int Step)? FetchingFrom = null)
{
    /// <summary>Whether it is loading a checkpoint or taking over a peer's state.</summary>
    public bool CatchingUp => CatchUpDeadline is not null;
}

/// <summary>A request to one trainer that the run waits for: of which step, asked of whom, until when.</summary>
public sealed record DriverRequest(int Step, string TrainerId, DateTime Deadline);

/// <summary>The run config values the driver decides with, read once from the spec.</summary>
/// <param name="SaveSteps">A checkpoint every this many steps (TrainingArguments' save_steps).</param>
/// <param name="OutputDir">Where checkpoints go.</param>
/// <param name="SaveTotalLimit">Checkpoints kept (0: all).</param>
/// <param name="Config">The whole config (evaluation schedule).</param>
/// <param name="StepsPerEpoch">Optimizer steps in one epoch of the plan.</param>
public sealed record DriverSettings(int SaveSteps, string OutputDir, int SaveTotalLimit, KtoConfig Config, int StepsPerEpoch)
{
    /// <summary>The settings of <paramref name="spec"/>.</summary>
    public static DriverSettings Of(RunSpec spec)
    {
        KtoConfig c = spec.Config();
        return new DriverSettings(c.SaveSteps, c.OutputDir, c.SaveTotalLimit ?? 0, c, spec.Plan().StepsPerEpoch);
    }

    /// <summary>Whether the state after <paramref name="done"/> steps is evaluated (eval_strategy).</summary>
    public bool EvaluateAfter(int done, int totalSteps) => KtoEvaluation.Due(Config, done, totalSteps, StepsPerEpoch);
}

/// <summary>
/// The step driver's transient state (nothing of it is persisted; a new coordinator incarnation starts from
/// <see cref="Empty"/> and learns the trainers again from their registrations). Immutable: <see cref="StepDriver.Handle"/>
/// returns the next one.
/// </summary>
public sealed record StepDriverState
{
    /// <summary>Before the journal is recovered.</summary>
    public static StepDriverState Empty { get; } = new();

    /// <summary>Registered trainers by id (ordinal order is ring order).</summary>
    public ImmutableSortedDictionary<string, DriverTrainer> Trainers { get; init; } = ImmutableSortedDictionary.Create<string, DriverTrainer>(StringComparer.Ordinal);

    /// <summary>Trainers left out of step membership (unreachable, or cut off from kept trainers).</summary>
    public ImmutableHashSet<string> Excluded { get; init; } = ImmutableHashSet.Create<string>(StringComparer.Ordinal);

    /// <summary>The attempt in flight, if any.</summary>
    public StepRound? Round { get; init; }

    /// <summary>The attempt in flight replays a step committed before (after a reload from a checkpoint): it is announced, not persisted.</summary>
    public bool Replay { get; init; }

    /// <summary>A commit is being persisted: nothing else moves until it is.</summary>
    public bool Committing { get; init; }

    /// <summary>A failed attempt's retry is scheduled.</summary>
    public bool RetryPending { get; init; }

    /// <summary>Whether the journal is recovered and the incarnation persisted.</summary>
    public bool Ready { get; init; }

    /// <summary>When this incarnation became ready (the grace for <see cref="MinTrainers"/> counts from it).</summary>
    public DateTime ReadyAt { get; init; }

    /// <summary>The last generation used; the next attempt takes the one after.</summary>
    public long Generation { get; init; }

    /// <summary>Trainers that must be usable before the first step (0 once any step started).</summary>
    public int MinTrainers { get; init; } = 1;

    /// <summary>The ring's generation and layout ("id@endpoint,…"): members reuse their connections while it holds.</summary>
    public (long Generation, string Layout)? Ring { get; init; }

    /// <summary>The first report of the attempt in flight (its metrics go into the commit).</summary>
    public StepReduced? FirstReport { get; init; }

    /// <summary>
    /// Of the attempt in flight's reports so far, the least and the most time in all-reduces (waits for slower members
    /// included), in seconds, and the member with the least — the one the others waited for: the difference is how
    /// long the fastest member waited for the slowest. (Not the spread of compute times: a member that scored more of
    /// the next step's reference ahead starts its step later, and the others wait for that too.)
    /// </summary>
    public (double Least, double Most, string SlowestMember)? ExchangeSpread { get; init; }

    /// <summary>The attempt in flight's reports so far (for <see cref="Balance"/> at its commit).</summary>
    public System.Collections.Immutable.ImmutableList<StepReduced> Reports { get; init; } = [];

    /// <summary>The shares the attempt in flight runs with (null: equal).</summary>
    public int[]? AttemptShares { get; init; }

    /// <summary>The members' measured speeds and the shares they are given (see <see cref="ShardBalance"/>).</summary>
    public ShardBalance Balance { get; init; } = ShardBalance.Empty;

    /// <summary>A checkpoint is wanted at the next step boundary (operator request, stop, or a failed write's retry).</summary>
    public bool CheckpointRequested { get; init; }

    /// <summary>A failed checkpoint write is not tried again before this.</summary>
    public DateTime CheckpointRetryAt { get; init; }

    /// <summary>The final checkpoint, asked of a member: the run's end waits for it.</summary>
    public DriverRequest? FinalCheckpoint { get; init; }

    /// <summary>An evaluation asked of a member: the run's end waits for it while its trainer lives and the deadline holds.</summary>
    public DriverRequest? PendingEvaluation { get; init; }

    /// <summary>The committed-step count to pause at (<c>run pause --at</c>), if set.</summary>
    public int? PauseAt { get; init; }

    /// <summary>The pause at <see cref="PauseAt"/> is being persisted: no step starts until it is.</summary>
    public bool Pausing { get; init; }

    /// <summary>The end of the run was announced.</summary>
    public bool FinishedAnnounced { get; init; }

    /// <summary>The run's settings, read from the spec on first use.</summary>
    public DriverSettings? Settings { get; init; }

    /// <summary>Trainers that may enter an attempt: reachable, not leaving, holding a state.</summary>
    public IEnumerable<string> Usable => Trainers.Where(kv => !Excluded.Contains(kv.Key) && !kv.Value.Leaving && kv.Value.HeldStep >= 0).Select(kv => kv.Key);
}
