using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>An event of a run's journal. The coordinator persists these; <see cref="RunState.Apply"/> folds them.</summary>
[Union(0, typeof(RunStarted))]
[Union(1, typeof(CoordinatorIncarnated))]
[Union(2, typeof(StepCommitted))]
[Union(3, typeof(CheckpointSaved))]
[Union(4, typeof(RunPaused))]
[Union(5, typeof(RunResumed))]
[Union(6, typeof(RunStopped))]
[Union(7, typeof(RunCompleted))]
[Union(8, typeof(RunStartedFromCheckpoint))]
[Union(9, typeof(EvaluationRecorded))]
public interface IRunEvent : IKtoMessage;

/// <summary>The run was created with <paramref name="Spec"/>.</summary>
[MessagePackObject]
public sealed record RunStarted([property: Key(0)] RunSpec Spec) : IRunEvent;

/// <summary>
/// A coordinator took charge of the run (after start or after recovering from the journal). Generations of steps are
/// numbered within an incarnation, so a restarted coordinator never reuses a generation a trainer may still hold.
/// </summary>
/// <param name="Incarnation">1 for the first coordinator of the run, one more for each that recovers it.</param>
/// <param name="Writer">Who claimed it: the host's Akka address, process id and machine name (named to an operator when
/// two coordinators write one journal); null in journals written before it was recorded.</param>
[MessagePackObject]
public sealed record CoordinatorIncarnated([property: Key(0)] int Incarnation, [property: Key(1)] string? Writer = null) : IRunEvent;

/// <summary>
/// Every member of the step's membership reported the same reduced-gradient checksum for <paramref name="Step"/>; the
/// step is committed (persisted before any replica applies it).
/// </summary>
/// <param name="Step">0-based optimizer step.</param>
/// <param name="Generation">The attempt that succeeded.</param>
/// <param name="Members">Trainer ids of the step's membership, in ring order.</param>
/// <param name="Checksum">Checksum of the reduced gradients all members agreed on.</param>
/// <param name="Metrics">The group's metric sums of the step (<see cref="MetricVector"/>), so that
/// <c>metrics.jsonl</c> is a projection of the journal and can be rebuilt from it; null in older journals.</param>
/// <param name="GradNorm">Global L2 norm of the reduced gradients, before clipping.</param>
/// <param name="Seconds">Wall time of the step as the coordinator saw it (from the previous commit or the first
/// start), for the throughput columns.</param>
[MessagePackObject]
public sealed record StepCommitted([property: Key(0)] int Step, [property: Key(1)] long Generation, [property: Key(2)] IReadOnlyList<string> Members, [property: Key(3)] ulong Checksum,
    [property: Key(4)] double[]? Metrics = null, [property: Key(5)] double GradNorm = 0, [property: Key(6)] double Seconds = 0) : IRunEvent;

/// <summary>
/// The run (just started) continues from the training checkpoint its config names in <c>resume_from_checkpoint</c>
/// (e.g. the latest checkpoint of a run whose journal was lost): its first <paramref name="Step"/> steps count as
/// committed, and every trainer loads that checkpoint before the next step.
/// </summary>
/// <param name="Step">Optimizer steps the checkpoint holds.</param>
/// <param name="Path">The checkpoint directory.</param>
/// <param name="Sha256">SHA-256 of its <c>trainer_state.json</c> (which holds the hash of every other file).</param>
[MessagePackObject]
public sealed record RunStartedFromCheckpoint([property: Key(0)] int Step, [property: Key(1)] string Path, [property: Key(2)] string Sha256) : IRunEvent;

/// <summary>The weights of <paramref name="Step"/> steps were evaluated on the run's eval set; <paramref name="Figures"/> is the eval line (metrics.jsonl projects it).</summary>
[MessagePackObject]
public sealed record EvaluationRecorded([property: Key(0)] int Step, [property: Key(1)] IReadOnlyDictionary<string, double> Figures) : IRunEvent;

/// <summary>A replica wrote an atomic checkpoint after <paramref name="Step"/> steps.</summary>
[MessagePackObject]
public sealed record CheckpointSaved([property: Key(0)] int Step, [property: Key(1)] string Path, [property: Key(2)] string Sha256) : IRunEvent;

/// <summary>The operator paused the run (no new step starts until resumed).</summary>
[MessagePackObject]
public sealed record RunPaused : IRunEvent;

/// <summary>The operator resumed a paused run.</summary>
[MessagePackObject]
public sealed record RunResumed : IRunEvent;

/// <summary>The operator stopped the run for good.</summary>
[MessagePackObject]
public sealed record RunStopped : IRunEvent;

/// <summary>All planned steps are committed.</summary>
[MessagePackObject]
public sealed record RunCompleted([property: Key(0)] int Steps) : IRunEvent;
