using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>
/// What a distributed run is, fixed when it starts: everything the batch plan depends on (so that any number of
/// trainers replays the same global batches) plus the run config the trainers load.
/// </summary>
/// <param name="RunId">Names the run (and its journal).</param>
/// <param name="DatasetFingerprint">The data the plan indexes (see <c>TrainingData.Fingerprint</c>).</param>
/// <param name="ExampleCount">Examples in the data.</param>
/// <param name="Seed">Data-order seed.</param>
/// <param name="Shuffle">Whether epochs are shuffled.</param>
/// <param name="GlobalBatchSize">Examples per micro-batch across all trainers (the KL batch).</param>
/// <param name="Accumulation">Micro-batches per optimizer step.</param>
/// <param name="TotalSteps">Optimizer steps in the run.</param>
/// <param name="ConfigJson">The run config as snake_case JSON.</param>
[MessagePackObject]
public sealed record RunSpec(
    [property: Key(0)] string RunId, [property: Key(1)] string DatasetFingerprint, [property: Key(2)] int ExampleCount,
    [property: Key(3)] int Seed, [property: Key(4)] bool Shuffle, [property: Key(5)] int GlobalBatchSize,
    [property: Key(6)] int Accumulation, [property: Key(7)] int TotalSteps, [property: Key(8)] string ConfigJson)
{
    /// <summary>The batch plan of this run: a pure function of the spec, independent of the number of trainers.</summary>
    public Training.BatchPlan Plan() => new(ExampleCount, Seed, Shuffle, GlobalBatchSize, Accumulation);
}
