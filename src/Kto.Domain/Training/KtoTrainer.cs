using Kto.Domain.Checkpoints;
using Kto.Domain.Loss;
using Kto.Domain.Options;

namespace Kto.Domain.Training;

/// <summary>
/// Single-process KTO training: <see cref="KtoStepper"/> over each micro-batch (one shard = the whole micro-batch)
/// inside the shared <see cref="TrainingLoop"/>.
/// </summary>
public sealed class KtoTrainer
{
    private readonly TrainingSetup _setup;
    private readonly ITrainingObserver _observer;

    /// <summary>Creates a trainer over a prepared setup (not owned).</summary>
    public KtoTrainer(TrainingSetup setup, ITrainingObserver observer)
    {
        _setup = setup;
        _observer = observer;
    }

    /// <summary>Trains to the configured end, resuming first when the config asks; honours <paramref name="cancel"/> at step boundaries.</summary>
    public TrainResult Run(CancellationToken cancel = default)
    {
        KtoConfig c = _setup.Config;
        var stepper = new KtoStepper(_setup.Compute, _setup.Reference, c.LossOptions, _setup.Tokenizer.EosTokenId, _setup.Device) { Precision = _setup.Precision, DropoutSeed = c.Seed };
        // full_determinism: the cluster's exact step, alone, so a cluster run of the same config gives these bits.
        var exact = c.FullDeterminism
            ? new Cluster.ReplicaStep(_setup.Policy, stepper, _setup.Data.Items, _setup.Precision, c.DeterminismSlices, c.GradientAccumulationSteps)
            : null;
        var loop = new TrainingLoop(c, _setup.Policy, _setup.Data.Fingerprint, _setup.Data.Items.Count, _observer, _setup.Precision) { Exact = exact?.Exact };
        Func<Dictionary<string, double>>? evaluate = _setup.EvalData is { } eval && _setup.EvalReference is { } evalReference
            ? () => KtoEvaluation.Run(stepper, evalReference, eval, c.PerDeviceEvalBatchSize)
            : null;
        return loop.Run((step, microBatches) =>
        {
            stepper.Step = step;
            if (exact is null) return ForwardBackward(stepper, microBatches);
            StepMetrics m = exact.Run(microBatches, Cluster.SoloGroup.Instance).Metrics;
            exact.Exact!.Commit(); // every step kto train computes is applied
            return m;
        }, $"loss {c.LossType.ToName()}, β {c.Beta}", cancel, evaluate);
    }

    private StepMetrics ForwardBackward(KtoStepper stepper, IReadOnlyList<int[]> microBatches)
    {
        StepMetrics metrics = StepMetrics.Zero;
        foreach (int[] indices in microBatches)
        {
            var shard = indices.Select(i => _setup.Data.Items[i]).ToList();
            ReferenceLogps[] reference = stepper.Reference(shard);
            KlPartial kl = stepper.KlPartial(shard, reference);
            metrics += stepper.ForwardBackward(shard, reference, kl, shard.Count, microBatches.Count) + KtoStepper.MicroBatchMetrics(kl);
        }
        return metrics;
    }
}
