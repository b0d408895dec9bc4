using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>Messages between trainer nodes and the run coordinator (over Akka.Remote; gradients never travel here).</summary>
[Union(0, typeof(RegisterTrainer))]
[Union(1, typeof(TrainerRegistered))]
public interface INodeMessage : IKtoMessage;

/// <summary>A trainer announces itself: its id, its data-plane (ring) endpoint and the step its weights hold.</summary>
/// <param name="TrainerId">Stable id of the trainer process.</param>
/// <param name="DataEndpoint">host:port of its ring endpoint.</param>
/// <param name="HeldStep">Committed steps its weights include (-1: no weights yet).</param>
[MessagePackObject]
public sealed record RegisterTrainer([property: Key(0)] string TrainerId, [property: Key(1)] string DataEndpoint, [property: Key(2)] int HeldStep) : INodeMessage;

/// <summary>The coordinator's answer: the run's committed steps and its incarnation.</summary>
/// <param name="TrainerId">The trainer it answers.</param>
/// <param name="CommittedSteps">Steps the journal holds.</param>
/// <param name="Incarnation">The coordinator's incarnation (generations of this incarnation start at incarnation &lt;&lt; 32).</param>
/// <param name="Trainers">Trainers registered now, this one included.</param>
[MessagePackObject]
public sealed record TrainerRegistered([property: Key(0)] string TrainerId, [property: Key(1)] int CommittedSteps, [property: Key(2)] int Incarnation, [property: Key(3)] int Trainers) : INodeMessage;
