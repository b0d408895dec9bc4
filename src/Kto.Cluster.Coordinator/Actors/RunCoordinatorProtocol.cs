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

/// <summary>Pause the run at the next step boundary or, with <paramref name="AtStep"/>, once that many steps are committed.</summary>
/// <param name="AtStep">Committed steps to pause at (more than the run has now, fewer than its total); null pauses now. The
/// point is held in memory: a coordinator restart forgets it.</param>
public sealed record PauseRun(int? AtStep = null) : IRunCommand;

/// <summary>
/// Resume a paused run; for a running run with a pause point (<see cref="PauseRun.AtStep"/>), cancel the point
/// (answered with <see cref="PausePointCancelled"/>).
/// </summary>
public sealed record ResumeRun : IRunCommand;

/// <summary>Stop the run for good.</summary>
public sealed record StopRun : IRunCommand;

/// <summary>Ask for the current state.</summary>
public sealed record GetRunState : IRunCommand;

/// <summary>The state after the command.</summary>
public sealed record RunStateReply(RunState State);

/// <summary><see cref="ResumeRun"/> cancelled the pause point at <paramref name="At"/> committed steps of a run still running.</summary>
public sealed record PausePointCancelled(int At, RunState State);

/// <summary>The command was not valid in the run's state; nothing was persisted.</summary>
public sealed record CommandRejected(string Reason);

/// <summary>Ask for the run state plus the transient membership and the step attempt in flight.</summary>
public sealed record GetClusterStatus : IRunCommand;

/// <summary>A registered trainer as the coordinator sees it.</summary>
/// <param name="TrainerId">Its id.</param>
/// <param name="Address">Its Akka address.</param>
/// <param name="DataEndpoint">Its ring endpoint.</param>
/// <param name="HeldStep">Committed steps its weights include (-1: no run loaded).</param>
/// <param name="Reachable">Whether the failure detector reports it reachable.</param>
/// <param name="Leaving">Whether it asked to leave.</param>
/// <param name="CatchingUp">Whether it is loading a checkpoint or taking over a peer's state.</param>
public sealed record TrainerStatus(string TrainerId, string Address, string DataEndpoint, int HeldStep, bool Reachable, bool Leaving, bool CatchingUp);

/// <summary>Answer to <see cref="GetClusterStatus"/>.</summary>
/// <param name="State">The run's durable state.</param>
/// <param name="Trainers">Registered trainers by id.</param>
/// <param name="RoundStep">The step of the attempt in flight, if any.</param>
/// <param name="RoundGeneration">Its generation.</param>
/// <param name="RoundMembers">Its members.</param>
/// <param name="Warnings">Storage that is failing now (the journal, metrics.jsonl, checkpoint writes), one line each.</param>
/// <param name="PauseAt">The committed-step count the run will pause at (<c>run pause --at</c>), if one is set.</param>
public sealed record ClusterStatus(RunState State, IReadOnlyList<TrainerStatus> Trainers, int? RoundStep, long? RoundGeneration, IReadOnlyList<string> RoundMembers,
    IReadOnlyList<string>? Warnings = null, int? PauseAt = null);

/// <summary>Ask for the coordinator's recent event lines after sequence number <paramref name="After"/> (for <c>run tail</c>).</summary>
public sealed record GetRecentLines(long After) : IRunCommand;

/// <summary>Recent event lines (commits, checkpoints, membership changes, the end of the run), oldest first, with their sequence numbers.</summary>
public sealed record RecentLines(IReadOnlyList<(long Seq, string Line)> Lines);

/// <summary>Write a checkpoint at the next step boundary (answered with a <see cref="RunStateReply"/> or a <see cref="CommandRejected"/>).</summary>
public sealed record RequestCheckpoint : IRunCommand;

/// <summary>Take a trainer out of the run after the step it is part of, as if it asked to leave; it then stops.</summary>
public sealed record DrainTrainer(string TrainerId) : IRunCommand;
