using System.Collections.Immutable;
using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>Where a run is in its life.</summary>
public enum RunPhase
{
    /// <summary>No run started yet.</summary>
    NotStarted,
    /// <summary>Steps are being trained.</summary>
    Running,
    /// <summary>Paused by the operator.</summary>
    Paused,
    /// <summary>Stopped by the operator.</summary>
    Stopped,
    /// <summary>Every planned step is committed.</summary>
    Completed,
}

/// <summary>A checkpoint the journal knows of.</summary>
/// <param name="Step">Steps completed when it was written.</param>
/// <param name="Path">Its directory.</param>
/// <param name="Sha256">Hash of its trainer_state.json (which holds the hashes of every other file).</param>
[MessagePackObject]
public sealed record CheckpointRecord([property: Key(0)] int Step, [property: Key(1)] string Path, [property: Key(2)] string Sha256);

/// <summary>
/// The durable truth of a distributed run, as an immutable record folded from <see cref="IRunEvent"/>s. The
/// coordinator actor only persists events and applies them here; everything it decides is a function of this
/// state and of transient membership. <see cref="Apply"/> rejects events that would break the run's invariants
/// (a step committed twice or out of order, anything before the run started), so a journal that replays without
/// error is a journal in which every step was committed exactly once, in order.
/// </summary>
public sealed record RunState
{
    /// <summary>Before the first event.</summary>
    public static RunState Empty { get; } = new();

    /// <summary>The run's spec; null before <see cref="RunStarted"/>.</summary>
    public RunSpec? Spec { get; init; }

    /// <summary>Committed steps; also the index of the next step to train.</summary>
    public int CommittedSteps { get; init; }

    /// <summary>The step this run's own commits start at: 0, or the step of the checkpoint it continued from (<see cref="RunStartedFromCheckpoint"/>).</summary>
    public int FirstStep { get; init; }

    /// <summary>The latest coordinator incarnation.</summary>
    public int Incarnation { get; init; }

    /// <summary>The run's phase.</summary>
    public RunPhase Phase { get; init; } = RunPhase.NotStarted;

    /// <summary>Checkpoints, oldest first.</summary>
    public ImmutableList<CheckpointRecord> Checkpoints { get; init; } = [];

    /// <summary>The last committed step's record, if any (what a re-registering trainer is compared with).</summary>
    public StepCommitted? LastCommit { get; init; }

    /// <summary>The newest checkpoint, or null.</summary>
    public CheckpointRecord? LatestCheckpoint => Checkpoints.IsEmpty ? null : Checkpoints[^1];

    /// <summary>Whether new steps may start.</summary>
    public bool AcceptsSteps => Phase == RunPhase.Running && Spec is not null && CommittedSteps < Spec.TotalSteps;

    /// <summary>The state after <paramref name="e"/>.</summary>
    /// <exception cref="InvalidOperationException">The event is not valid in this state.</exception>
    public RunState Apply(IRunEvent e) => e switch
    {
        RunStarted s when Spec is null => this with { Spec = s.Spec, Phase = s.Spec.TotalSteps == 0 ? RunPhase.Completed : RunPhase.Running },
        RunStarted => throw Invalid(e, "the run has already started"),
        CoordinatorIncarnated c when c.Incarnation > Incarnation => this with { Incarnation = c.Incarnation },
        CoordinatorIncarnated c => throw Invalid(e, $"incarnations only grow (current {Incarnation})"),
        _ when Spec is null => throw Invalid(e, "the run has not started"),
        StepCommitted c => Commit(c),
        RunStartedFromCheckpoint f when CommittedSteps == 0 && Checkpoints.IsEmpty && Phase == RunPhase.Running && f.Step > 0 && f.Step < Spec.TotalSteps
            => this with { CommittedSteps = f.Step, FirstStep = f.Step, Checkpoints = Checkpoints.Add(new CheckpointRecord(f.Step, f.Path, f.Sha256)) },
        RunStartedFromCheckpoint f => throw Invalid(e, $"a run continues from a checkpoint only right after it started, before step {Spec.TotalSteps} (the checkpoint holds {f.Step})"),
        CheckpointSaved c when c.Step <= CommittedSteps && (Checkpoints.IsEmpty || c.Step > Checkpoints[^1].Step)
            => this with { Checkpoints = Checkpoints.Add(new CheckpointRecord(c.Step, c.Path, c.Sha256)) },
        CheckpointSaved c => throw Invalid(e, $"a checkpoint must follow the newest one and not pass the {CommittedSteps} committed steps"),
        EvaluationRecorded v when v.Step >= 1 && v.Step <= CommittedSteps => this, // a projection's line; no state
        EvaluationRecorded v => throw Invalid(e, $"an evaluation of step {v.Step} cannot pass the {CommittedSteps} committed steps"),
        RunPaused when Phase == RunPhase.Running => this with { Phase = RunPhase.Paused },
        RunResumed when Phase == RunPhase.Paused => this with { Phase = RunPhase.Running },
        RunStopped when Phase is RunPhase.Running or RunPhase.Paused => this with { Phase = RunPhase.Stopped },
        RunCompleted c when c.Steps == CommittedSteps && CommittedSteps == Spec!.TotalSteps => this with { Phase = RunPhase.Completed },
        _ => throw Invalid(e, $"not allowed while the run is {Phase} with {CommittedSteps} committed steps"),
    };

    /// <summary>Folds a whole journal.</summary>
    public static RunState Replay(IEnumerable<IRunEvent> events) => events.Aggregate(Empty, (s, e) => s.Apply(e));

    private RunState Commit(StepCommitted c)
    {
        if (Phase != RunPhase.Running) throw Invalid(c, $"no step commits while the run is {Phase}");
        if (c.Step != CommittedSteps) throw Invalid(c, $"step {CommittedSteps} is the next to commit");
        if (c.Step >= Spec!.TotalSteps) throw Invalid(c, $"the run has {Spec.TotalSteps} steps");
        if (c.Members.Count == 0) throw Invalid(c, "a step needs at least one member");
        if (LastCommit is { } last && c.Generation <= last.Generation) throw Invalid(c, $"generations only grow (last {last.Generation})");
        return this with { CommittedSteps = CommittedSteps + 1, LastCommit = c };
    }

    private static InvalidOperationException Invalid(IRunEvent e, string why) => new($"{e.GetType().Name} rejected: {why}");
}
