using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Cluster;

/// <summary>
/// A trainer replica's state for a run: the plan, schedule, optimizer and <see cref="ReplicaStep"/> around a prepared
/// <see cref="TrainingSetup"/>. Each step is two calls: <see cref="Reduce"/> (compute and all-reduce; the result is
/// what the member reports) and, once the step is committed, <see cref="Apply"/>.
/// </summary>
public sealed class ReplicaTrainer : IDisposable
{
    private readonly KtoConfig _config;
    private readonly LrSchedule _schedule;
    private readonly ReplicaStep _step;
    private readonly AdamW _optimizer;

    /// <summary>Wraps <paramref name="setup"/> (not owned).</summary>
    public ReplicaTrainer(TrainingSetup setup)
    {
        _config = setup.Config;
        Plan = new BatchPlan(setup.Data.Items.Count, _config.EffectiveDataSeed, _config.Shuffle, _config.PerDeviceTrainBatchSize, _config.GradientAccumulationSteps);
        TotalSteps = Plan.TotalSteps(_config.NumTrainEpochs, _config.MaxSteps);
        _schedule = LrSchedule.For(_config, TotalSteps);
        var stepper = new KtoStepper(setup.Policy, setup.Reference, _config.LossOptions, setup.Tokenizer.EosTokenId, setup.Device);
        _step = new ReplicaStep(setup.Policy, stepper, setup.Data.Items);
        _optimizer = new AdamW(setup.Policy.named_parameters().Select(p => (p.name, p.parameter)), _config.AdamBeta1, _config.AdamBeta2, _config.AdamEpsilon, _config.WeightDecay);
        setup.Policy.train();
    }

    /// <summary>The run's batch plan.</summary>
    public BatchPlan Plan { get; }

    /// <summary>Optimizer steps in the run.</summary>
    public int TotalSteps { get; }

    /// <summary>Computes step <paramref name="step"/> as a member of <paramref name="group"/>; see <see cref="ReplicaStep.Run"/>.</summary>
    public (StepMetrics Metrics, ulong Checksum) Reduce(int step, IAllReduce group) => _step.Run(Plan.Step(step), group);

    /// <summary>Applies the reduced gradients of <paramref name="step"/>; returns the gradient norm before clipping.</summary>
    public double Apply(int step) => _step.Apply(_optimizer, _schedule.At(step), _config.MaxGradNorm);

    /// <inheritdoc />
    public void Dispose() => _optimizer.Dispose();
}
