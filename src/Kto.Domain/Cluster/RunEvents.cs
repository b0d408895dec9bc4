namespace Kto.Domain.Cluster;

/// <summary>An event of a run's journal. The coordinator persists these; <see cref="RunState.Apply"/> folds them.</summary>
public interface IRunEvent;

/// <summary>The run was created with <paramref name="Spec"/>.</summary>
public sealed record RunStarted(RunSpec Spec) : IRunEvent;

/// <summary>
/// A coordinator took charge of the run (after start or after recovering from the journal). Generations of steps are
/// numbered within an incarnation, so a restarted coordinator never reuses a generation a trainer may still hold.
/// </summary>
public sealed record CoordinatorIncarnated(int Incarnation) : IRunEvent;

/// <summary>
/// Every member of the step's membership reported the same reduced-gradient checksum for <paramref name="Step"/>; the
/// step is committed (persisted before any replica applies it).
/// </summary>
/// <param name="Step">0-based optimizer step.</param>
/// <param name="Generation">The attempt that succeeded.</param>
/// <param name="Members">Trainer ids of the step's membership, in ring order.</param>
/// <param name="Checksum">Checksum of the reduced gradients all members agreed on.</param>
public sealed record StepCommitted(int Step, long Generation, IReadOnlyList<string> Members, ulong Checksum) : IRunEvent;

/// <summary>A replica wrote an atomic checkpoint after <paramref name="Step"/> steps.</summary>
public sealed record CheckpointSaved(int Step, string Path, string Sha256) : IRunEvent;

/// <summary>The operator paused the run (no new step starts until resumed).</summary>
public sealed record RunPaused : IRunEvent;

/// <summary>The operator resumed a paused run.</summary>
public sealed record RunResumed : IRunEvent;

/// <summary>The operator stopped the run for good.</summary>
public sealed record RunStopped : IRunEvent;

/// <summary>All planned steps are committed.</summary>
public sealed record RunCompleted(int Steps) : IRunEvent;
