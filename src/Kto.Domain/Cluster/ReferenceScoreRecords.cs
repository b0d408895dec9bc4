using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>
/// What the journal of precomputed reference log-probs holds (one journal per dataset fingerprint + reference hash,
/// shared by every run over the same data and reference).
/// </summary>
[Union(0, typeof(ScoresStored))]
[Union(1, typeof(ScoresSnapshot))]
public interface IScoreRecord : IKtoMessage;

/// <summary>A scored unit, stored once: reference log-probs of each index's completion and KL pair.</summary>
[MessagePackObject]
public sealed record ScoresStored([property: Key(0)] int Unit, [property: Key(1)] int[] Indices, [property: Key(2)] double[] Completion,
    [property: Key(3)] double[] Kl) : IScoreRecord;

/// <summary>Every stored value at once (a journal snapshot).</summary>
[MessagePackObject]
public sealed record ScoresSnapshot([property: Key(0)] int Count, [property: Key(1)] int[] Indices, [property: Key(2)] double[] Completion,
    [property: Key(3)] double[] Kl) : IScoreRecord;
