using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>Commands the run coordinator accepts; each is answered with a <see cref="RunStateReply"/> or a <see cref="CommandRejected"/>.</summary>
public interface IRunCommand;

/// <summary>Start the run (idempotent for the same spec).</summary>
public sealed record StartRun(RunSpec Spec) : IRunCommand;

/// <summary>Persist a step commit (produced by a finished <see cref="StepRound"/>).</summary>
public sealed record CommitStep(StepCommitted Commit) : IRunCommand;

/// <summary>Record a checkpoint written by a replica.</summary>
public sealed record RecordCheckpoint(CheckpointSaved Checkpoint) : IRunCommand;

/// <summary>Pause the run at the next step boundary.</summary>
public sealed record PauseRun : IRunCommand;

/// <summary>Resume a paused run.</summary>
public sealed record ResumeRun : IRunCommand;

/// <summary>Stop the run for good.</summary>
public sealed record StopRun : IRunCommand;

/// <summary>Ask for the current state.</summary>
public sealed record GetRunState : IRunCommand;

/// <summary>The state after the command.</summary>
public sealed record RunStateReply(RunState State);

/// <summary>The command was not valid in the run's state; nothing was persisted.</summary>
public sealed record CommandRejected(string Reason);
