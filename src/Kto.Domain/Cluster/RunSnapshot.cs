using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>A <see cref="RunState"/> in serializable form, for journal snapshots.</summary>
/// <param name="Spec">The run's spec.</param>
/// <param name="CommittedSteps">Committed steps.</param>
/// <param name="Incarnation">Latest coordinator incarnation.</param>
/// <param name="Phase">The run's phase.</param>
/// <param name="Checkpoints">Checkpoints, oldest first.</param>
/// <param name="LastCommit">The last commit, if any.</param>
/// <param name="FirstStep">The step the run's own commits start at (0, or the checkpoint it continued from).</param>
[MessagePackObject]
public sealed record RunSnapshot(
    [property: Key(0)] RunSpec? Spec,
    [property: Key(1)] int CommittedSteps,
    [property: Key(2)] int Incarnation,
    [property: Key(3)] RunPhase Phase,
    [property: Key(4)] CheckpointRecord[] Checkpoints,
    [property: Key(5)] StepCommitted? LastCommit,
    [property: Key(6)] int FirstStep = 0) : IKtoMessage
{
    /// <summary>The snapshot of <paramref name="s"/>.</summary>
    public static RunSnapshot Of(RunState s) => new(s.Spec, s.CommittedSteps, s.Incarnation, s.Phase, [.. s.Checkpoints], s.LastCommit, s.FirstStep);

    /// <summary>The state this snapshot holds.</summary>
    public RunState ToState() => new()
    {
        Spec = Spec, CommittedSteps = CommittedSteps, Incarnation = Incarnation, Phase = Phase,
        Checkpoints = [.. Checkpoints], LastCommit = LastCommit, FirstStep = FirstStep,
    };
}
