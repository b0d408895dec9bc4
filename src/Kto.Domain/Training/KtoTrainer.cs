using System.Diagnostics;
using Kto.Domain.Checkpoints;
using Kto.Domain.Loss;
using Kto.Domain.Options;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>The outcome of <see cref="KtoTrainer.Run"/>.</summary>
/// <param name="GlobalStep">Steps completed.</param>
/// <param name="FinalCheckpoint">The checkpoint written at the end.</param>
/// <param name="LastMetrics">Metrics of the last logging window.</param>
public sealed record TrainResult(int GlobalStep, string FinalCheckpoint, IReadOnlyDictionary<string, double> LastMetrics);

/// <summary>
/// Single-process KTO training: the loop around <see cref="KtoStepper"/> (one shard = the whole micro-batch),
/// gradient clipping, <see cref="AdamW"/>, the learning-rate schedule, metrics, checkpoints and resume.
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
        Directory.CreateDirectory(c.OutputDir);
        AtomicFile.WriteText(Path.Combine(c.OutputDir, "run_config.json"), KtoConfigReader.ToJson(c));
        var plan = new BatchPlan(_setup.Data.Items.Count, c.EffectiveDataSeed, c.Shuffle, c.PerDeviceTrainBatchSize, c.GradientAccumulationSteps);
        int total = plan.TotalSteps(c.NumTrainEpochs, c.MaxSteps);
        LrSchedule schedule = LrSchedule.For(c, total);
        var parameters = _setup.Policy.named_parameters().ToList();
        using var optimizer = new AdamW(parameters.Select(p => (p.name, p.parameter)), c.AdamBeta1, c.AdamBeta2, c.AdamEpsilon, c.WeightDecay);
        var stepper = new KtoStepper(_setup.Policy, _setup.Reference, c.LossOptions, _setup.Tokenizer.EosTokenId, _setup.Device);
        var log = new MetricsLog(c.OutputDir);

        int step = Resume(c, optimizer, log);
        _observer.Info($"training: {total} steps ({plan.StepsPerEpoch} per epoch), batch {c.PerDeviceTrainBatchSize} × {c.GradientAccumulationSteps} accumulation, loss {c.LossType.ToName()}, β {c.Beta}");
        _setup.Policy.train();
        StepMetrics window = StepMetrics.Zero;
        var clock = Stopwatch.StartNew();
        int windowExamples = 0;
        string? lastCheckpoint = null;
        IReadOnlyDictionary<string, double> last = new Dictionary<string, double>();
        while (step < total && !cancel.IsCancellationRequested)
        {
            (StepMetrics m, double gradNorm, int examples) = TrainStep(plan.Step(step), stepper, optimizer, schedule.At(step), c.MaxGradNorm);
            window += m;
            windowExamples += examples;
            step++;
            var figures = new Dictionary<string, double>(m.ToDictionary()) { ["grad_norm"] = gradNorm, ["learning_rate"] = schedule.At(step - 1) };
            _observer.Progress(new ProgressUpdate("train", step, total, figures));
            if (step % c.LoggingSteps == 0 || step == total)
            {
                double seconds = Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                var metrics = window.ToDictionary();
                metrics["grad_norm"] = gradNorm;
                metrics["learning_rate"] = schedule.At(step - 1);
                metrics["examples/s"] = windowExamples / seconds;
                metrics["tokens/s"] = window.Tokens / seconds;
                log.Append(step, (double)step / plan.StepsPerEpoch, metrics);
                last = metrics;
                window = StepMetrics.Zero;
                windowExamples = 0;
                clock.Restart();
            }
            if (step % c.SaveSteps == 0 || step == total)
                lastCheckpoint = SaveCheckpoint(c, optimizer, step, total, plan);
        }
        if (step < total)
        {
            lastCheckpoint = SaveCheckpoint(c, optimizer, step, total, plan);
            _observer.Info($"stopped at step {step}; resume with resume_from_checkpoint \"{KtoConfigReader.ResumeLatest}\"");
        }
        return new TrainResult(step, lastCheckpoint ?? TrainingCheckpoint.Latest(c.OutputDir) ?? "", last);
    }

    private (StepMetrics Metrics, double GradNorm, int Examples) TrainStep(IReadOnlyList<int[]> microBatches, KtoStepper stepper, AdamW optimizer, double lr, double maxGradNorm)
    {
        optimizer.ZeroGrad();
        StepMetrics metrics = StepMetrics.Zero;
        int examples = 0;
        foreach (int[] indices in microBatches)
        {
            var shard = indices.Select(i => _setup.Data.Items[i]).ToList();
            ReferenceLogps[] reference = stepper.Reference(shard);
            KlPartial kl = stepper.KlPartial(shard, reference);
            metrics += stepper.ForwardBackward(shard, reference, kl, shard.Count, microBatches.Count) + KtoStepper.MicroBatchMetrics(kl);
            examples += shard.Count;
        }
        double norm = GradientClipping.ClipGlobalNorm(_setup.Policy.parameters(), maxGradNorm);
        optimizer.Step(lr);
        return (metrics, norm, examples);
    }

    private int Resume(KtoConfig c, AdamW optimizer, MetricsLog log)
    {
        if (c.ResumeFromCheckpoint is null)
        {
            string? earlier = TrainingCheckpoint.Latest(c.OutputDir);
            if (earlier != null && !c.OverwriteOutputDir)
                throw new InvalidOperationException(
                    $"{c.OutputDir} already holds checkpoints of a run (newest: {Path.GetFileName(earlier)}). Resume it (--resume, or " +
                    $"resume_from_checkpoint \"{KtoConfigReader.ResumeLatest}\"), choose another output_dir, or set overwrite_output_dir to true to start afresh.");
            foreach (var (_, old) in TrainingCheckpoint.List(c.OutputDir)) Directory.Delete(old, recursive: true);
            if (File.Exists(log.FilePath)) File.Delete(log.FilePath);
            return 0;
        }
        string? dir = c.ResumeFromCheckpoint == KtoConfigReader.ResumeLatest ? TrainingCheckpoint.Latest(c.OutputDir) : c.ResumeFromCheckpoint;
        if (dir is null)
        {
            _observer.Info($"resume_from_checkpoint \"latest\": no checkpoint in {c.OutputDir} yet, starting from step 0");
            if (File.Exists(log.FilePath)) File.Delete(log.FilePath);
            return 0;
        }
        TrainerState state = TrainingCheckpoint.Restore(dir, _setup.Policy, optimizer);
        if (state.DatasetFingerprint != _setup.Data.Fingerprint)
            throw new InvalidDataException($"{dir}: was trained on different data (fingerprint {state.DatasetFingerprint[..12]}…, now {_setup.Data.Fingerprint[..12]}…)");
        log.TruncateAfter(state.GlobalStep);
        _observer.Info($"resumed from {dir} at step {state.GlobalStep}");
        return state.GlobalStep;
    }

    private string SaveCheckpoint(KtoConfig c, AdamW optimizer, int step, int total, BatchPlan plan)
    {
        var state = new TrainerState(step, _setup.Data.Fingerprint, total, (double)step / plan.StepsPerEpoch);
        string path = TrainingCheckpoint.Save(c.OutputDir, _setup.Policy, optimizer, state);
        if (c.SaveTotalLimit is int keep) TrainingCheckpoint.Prune(c.OutputDir, keep);
        return path;
    }
}
