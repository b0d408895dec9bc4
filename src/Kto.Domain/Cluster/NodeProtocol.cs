using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>
/// Messages between trainer and scorer nodes and the run coordinator, and between trainers for state transfer (over
/// Akka.Remote; gradients never travel here, and nothing here is larger than one <see cref="StateChunk"/>).
/// </summary>
[Union(0, typeof(RegisterTrainer))]
[Union(1, typeof(TrainerRegistered))]
[Union(2, typeof(StepStart))]
[Union(3, typeof(StepReduced))]
[Union(4, typeof(StepFailed))]
[Union(5, typeof(StepApply))]
[Union(6, typeof(StepAbort))]
[Union(7, typeof(CheckpointWritten))]
[Union(8, typeof(LoadCheckpoint))]
[Union(9, typeof(FetchState))]
[Union(10, typeof(StateRequest))]
[Union(11, typeof(StateChunk))]
[Union(12, typeof(Reregister))]
[Union(13, typeof(TrainerLeaving))]
[Union(14, typeof(LeaveGranted))]
[Union(15, typeof(RegisterScorer))]
[Union(16, typeof(ScorerRegistered))]
[Union(17, typeof(ScoreUnit))]
[Union(18, typeof(UnitScored))]
[Union(19, typeof(ReferenceScores))]
[Union(20, typeof(WriteCheckpoint))]
[Union(21, typeof(CheckpointFailed))]
[Union(22, typeof(TrainerRefused))]
[Union(23, typeof(EvaluationDone))]
[Union(24, typeof(PeersUnreachable))]
public interface INodeMessage : IKtoMessage;

/// <summary>
/// A trainer announces itself: its id, its data-plane (ring) endpoint and the committed steps its weights include.
/// Sent on start (until answered), after its state changed outside a step (prepared, checkpoint loaded, state
/// received), and when a restarted coordinator asks (<see cref="Reregister"/>).
/// </summary>
/// <param name="TrainerId">Stable id of the trainer process.</param>
/// <param name="DataEndpoint">host:port of its ring endpoint.</param>
/// <param name="HeldStep">Committed steps its weights include; <see cref="NoState"/> while it has no run loaded.</param>
[MessagePackObject]
public sealed record RegisterTrainer([property: Key(0)] string TrainerId, [property: Key(1)] string DataEndpoint, [property: Key(2)] int HeldStep) : INodeMessage
{
    /// <summary>The <see cref="HeldStep"/> of a trainer that has not loaded the run yet.</summary>
    public const int NoState = -1;
}

/// <summary>The coordinator's answer: the run's committed steps, its incarnation and the run to load.</summary>
/// <param name="TrainerId">The trainer it answers.</param>
/// <param name="CommittedSteps">Steps the journal holds.</param>
/// <param name="Incarnation">The coordinator's incarnation (generations of this incarnation start at incarnation &lt;&lt; 32).</param>
/// <param name="Trainers">Trainers registered now, this one included.</param>
/// <param name="Spec">The run (null before it starts): a trainer without state loads it and registers again.</param>
[MessagePackObject]
public sealed record TrainerRegistered([property: Key(0)] string TrainerId, [property: Key(1)] int CommittedSteps, [property: Key(2)] int Incarnation,
    [property: Key(3)] int Trainers, [property: Key(4)] RunSpec? Spec = null) : INodeMessage;

/// <summary>Compute step <paramref name="Step"/> as a member of this attempt.</summary>
/// <param name="Step">0-based optimizer step.</param>
/// <param name="Generation">The attempt; also the ring's generation.</param>
/// <param name="Members">Trainer ids in ring order.</param>
/// <param name="Endpoints">Their ring endpoints (host:port), same order.</param>
/// <param name="RingGeneration">The generation the ring of these members was formed at: members keep the ring of an
/// earlier attempt while the membership holds and nothing failed, and form a new one when this differs from theirs.</param>
/// <param name="Shares">Each member's share of every micro-batch (positive weights, <see cref="ShardPlan.Apportion"/>), same
/// order; null: equal shares.</param>
[MessagePackObject]
public sealed record StepStart([property: Key(0)] int Step, [property: Key(1)] long Generation, [property: Key(2)] string[] Members, [property: Key(3)] string[] Endpoints,
    [property: Key(4)] long RingGeneration, [property: Key(5)] int[]? Shares = null) : INodeMessage;

/// <summary>A member finished the all-reduce of an attempt; every member of a good attempt reports the same values.</summary>
/// <param name="TrainerId">The reporting member.</param>
/// <param name="Step">Step.</param>
/// <param name="Generation">Attempt.</param>
/// <param name="Checksum">Checksum of the reduced gradients.</param>
/// <param name="Metrics">The group's metric sums (<see cref="MetricVector"/>).</param>
/// <param name="GradNorm">Global L2 norm of the reduced gradients, before clipping.</param>
/// <param name="Seconds">How long the member took from <see cref="StepStart"/> to the end of its all-reduce.</param>
/// <param name="ExchangeSeconds">Of that, the time in all-reduces (waiting for slower members included).</param>
/// <param name="BytesSent">Bytes the member wrote to the gradient ring for the attempt (KL, gradients and metrics, headers included).</param>
/// <param name="AheadSeconds">Seconds the member worked for this attempt before its <see cref="StepStart"/> (the reference
/// scored ahead after its previous report, and the apply): with <see cref="Seconds"/> less <see cref="ExchangeSeconds"/>,
/// its whole compute for the step.</param>
[MessagePackObject]
public sealed record StepReduced([property: Key(0)] string TrainerId, [property: Key(1)] int Step, [property: Key(2)] long Generation,
    [property: Key(3)] ulong Checksum, [property: Key(4)] double[] Metrics, [property: Key(5)] double GradNorm, [property: Key(6)] double Seconds = 0,
    [property: Key(7)] double ExchangeSeconds = 0, [property: Key(8)] long BytesSent = 0, [property: Key(9)] double AheadSeconds = 0) : INodeMessage;

/// <summary>A member could not finish an attempt (the ring broke, a neighbour never came, or it was aborted).</summary>
[MessagePackObject]
public sealed record StepFailed([property: Key(0)] string TrainerId, [property: Key(1)] int Step, [property: Key(2)] long Generation, [property: Key(3)] string Reason) : INodeMessage;

/// <summary>
/// The attempt is committed (already persisted): apply its reduced gradients. When <paramref name="CheckpointDir"/> is
/// set, write a training checkpoint there afterwards and answer with <see cref="CheckpointWritten"/>; when
/// <paramref name="Evaluate"/>, evaluate the new weights on the run's eval set and answer with <see cref="EvaluationDone"/>.
/// </summary>
[MessagePackObject]
public sealed record StepApply([property: Key(0)] int Step, [property: Key(1)] long Generation, [property: Key(2)] string? CheckpointDir,
    [property: Key(3)] int SaveTotalLimit = 0, [property: Key(4)] bool Evaluate = false) : INodeMessage;

/// <summary>A trainer evaluated the weights of <paramref name="Step"/> steps (eval_strategy): the eval line's figures (TRL's eval_ names).</summary>
[MessagePackObject]
public sealed record EvaluationDone([property: Key(0)] string TrainerId, [property: Key(1)] int Step, [property: Key(2)] IReadOnlyDictionary<string, double> Figures) : INodeMessage;

/// <summary>
/// What a trainer's own failure detector says about the other trainers: the Akka addresses of those it monitors and
/// finds unreachable (empty when it reaches them all). Sent when that changes and every
/// <c>TrainerNodeActor.PeerReportInterval</c>; the coordinator keeps one side when trainers cannot reach each other
/// (<see cref="PartitionSide"/>). Akka's gossip only says that somebody finds a member unreachable, not who.
/// </summary>
[MessagePackObject]
public sealed record PeersUnreachable([property: Key(0)] string TrainerId, [property: Key(1)] string[] Addresses) : INodeMessage;

/// <summary>Drop the attempt: its gradients will never be applied (a member was lost, or the members disagreed).</summary>
[MessagePackObject]
public sealed record StepAbort([property: Key(0)] int Step, [property: Key(1)] long Generation) : INodeMessage;

/// <summary>A replica wrote an atomic checkpoint after <paramref name="Step"/> steps.</summary>
[MessagePackObject]
public sealed record CheckpointWritten([property: Key(0)] string TrainerId, [property: Key(1)] int Step, [property: Key(2)] string Path, [property: Key(3)] string Sha256) : INodeMessage;

/// <summary>
/// A replica could not write the checkpoint after <paramref name="Step"/> steps (its temporary directory is removed);
/// the coordinator retries at a later step boundary with a back-off.
/// </summary>
/// <param name="TrainerId">The writer.</param>
/// <param name="Step">The step it was asked to save.</param>
/// <param name="Reason">The error, e.g. "No space left on device : '/data/out/.checkpoint-40.tmp-123/model.safetensors'".</param>
[MessagePackObject]
public sealed record CheckpointFailed([property: Key(0)] string TrainerId, [property: Key(1)] int Step, [property: Key(2)] string Reason) : INodeMessage;

/// <summary>
/// A trainer cannot take part in the run: its data or models differ from the run's (sent by the trainer; the
/// coordinator removes it), or the coordinator sends it away (another process holds its id, or the coordinator stops for
/// good). The node process exits with status 2.
/// </summary>
/// <param name="TrainerId">The trainer.</param>
/// <param name="RunId">The run it refused.</param>
/// <param name="Reason">One line naming what differs.</param>
[MessagePackObject]
public sealed record TrainerRefused([property: Key(0)] string TrainerId, [property: Key(1)] string RunId, [property: Key(2)] string Reason) : INodeMessage;

/// <summary>Load weights and optimizer state from a checkpoint (no replica holds the run's state), then register again.</summary>
[MessagePackObject]
public sealed record LoadCheckpoint([property: Key(0)] string Path, [property: Key(1)] int Step) : INodeMessage;

/// <summary>Fetch weights and optimizer state for <paramref name="Step"/> from the synced replica at <paramref name="SourcePath"/>, then register again.</summary>
[MessagePackObject]
public sealed record FetchState([property: Key(0)] int Step, [property: Key(1)] string SourcePath) : INodeMessage;

/// <summary>Asks a synced replica for chunk <paramref name="Index"/> of its state at <paramref name="Step"/>.</summary>
[MessagePackObject]
public sealed record StateRequest([property: Key(0)] int Step, [property: Key(1)] int Index) : INodeMessage;

/// <summary>
/// One chunk of a replica's state (safetensors image of weights and optimizer moments). <paramref name="Count"/> is 0
/// when the source does not hold <paramref name="Step"/> (yet): ask again later.
/// </summary>
[MessagePackObject]
public sealed record StateChunk([property: Key(0)] int Step, [property: Key(1)] int Index, [property: Key(2)] int Count, [property: Key(3)] byte[] Data) : INodeMessage
{
    /// <summary>Chunk payload size: well below Akka.Remote's default 128000-byte frame.</summary>
    public const int MaxBytes = 64 * 1024;
}

/// <summary>A (restarted) coordinator asks every trainer to register again.</summary>
[MessagePackObject]
public sealed record Reregister([property: Key(0)] int Incarnation) : INodeMessage;

/// <summary>A trainer wants to leave; the coordinator lets it finish a step it is part of, then grants it.</summary>
[MessagePackObject]
public sealed record TrainerLeaving([property: Key(0)] string TrainerId) : INodeMessage;

/// <summary>The trainer is out of every future step's membership and may stop.</summary>
[MessagePackObject]
public sealed record LeaveGranted([property: Key(0)] string TrainerId) : INodeMessage;

/// <summary>
/// A scorer announces itself: without a loaded run (<paramref name="LoadedRun"/> null) it asks for the run; with it, it
/// asks for work. Sent on start (until answered) and when a restarted coordinator asks (<see cref="Reregister"/>).
/// </summary>
[MessagePackObject]
public sealed record RegisterScorer([property: Key(0)] string ScorerId, [property: Key(1)] string? LoadedRun) : INodeMessage;

/// <summary>
/// The coordinator's answer to a scorer: the run to load (its <see cref="RunSpec.ReferenceHash"/> names the reference
/// the scorer must hold), or null with <paramref name="Reason"/> when no run needs scoring.
/// </summary>
[MessagePackObject]
public sealed record ScorerRegistered([property: Key(0)] string ScorerId, [property: Key(1)] RunSpec? Spec, [property: Key(2)] string? Reason) : INodeMessage;

/// <summary>Score unit <paramref name="Unit"/> (see <c>ReferenceScoring.Units</c>): the dataset indices it holds.</summary>
[MessagePackObject]
public sealed record ScoreUnit([property: Key(0)] int Unit, [property: Key(1)] int[] Indices) : INodeMessage;

/// <summary>A scorer's result: reference log-probs of each index's completion and KL pair (at most 2048 indices).</summary>
[MessagePackObject]
public sealed record UnitScored([property: Key(0)] string ScorerId, [property: Key(1)] int Unit, [property: Key(2)] int[] Indices,
    [property: Key(3)] double[] Completion, [property: Key(4)] double[] Kl) : INodeMessage;

/// <summary>
/// Reference log-probs a trainer needs for step <paramref name="Step"/>, sent before its <see cref="StepStart"/> (in
/// parts of at most 2048 examples).
/// </summary>
[MessagePackObject]
public sealed record ReferenceScores([property: Key(0)] int Step, [property: Key(1)] int[] Indices, [property: Key(2)] double[] Completion,
    [property: Key(3)] double[] Kl) : INodeMessage;

/// <summary>Write a training checkpoint of the held step <paramref name="Step"/> under <paramref name="Dir"/>; answered with <see cref="CheckpointWritten"/>.</summary>
[MessagePackObject]
public sealed record WriteCheckpoint([property: Key(0)] int Step, [property: Key(1)] string Dir, [property: Key(2)] int SaveTotalLimit) : INodeMessage;
