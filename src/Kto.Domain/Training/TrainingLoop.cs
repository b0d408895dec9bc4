using System.Diagnostics;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Options;

namespace Kto.Domain.Training;

/// <summary>The outcome of a training run.</summary>
/// <param name="GlobalStep">Steps completed.</param>
/// <param name="FinalCheckpoint">The checkpoint written at the end.</param>
/// <param name="LastMetrics">Metrics of the last logging window.</param>
public sealed record TrainResult(int GlobalStep, string FinalCheckpoint, IReadOnlyDictionary<string, double> LastMetrics);

/// <summary>
/// What every objective's training shares: the batch plan, the learning-rate schedule, gradient clipping,
/// <see cref="AdamW"/>, <c>metrics.jsonl</c>, periodic atomic checkpoints, resume, and stopping at a step boundary.
/// The objective only runs forward and backward over a step's micro-batches (see <see cref="Run{TMetrics}"/>).
/// </summary>
public sealed class TrainingLoop
{
    private readonly KtoConfig _config;
    private readonly CausalLm _policy;
    private readonly MixedPrecision? _precision;
    private readonly string _fingerprint;
    private readonly ITrainingObserver _observer;
    private readonly BatchPlan _plan;

    /// <summary>Creates the loop for <paramref name="policy"/> (not owned) over <paramref name="exampleCount"/> examples.</summary>
    /// <param name="config">The run config.</param>
    /// <param name="policy">The weights the optimizer steps (not owned).</param>
    /// <param name="dataFingerprint">The data's fingerprint, kept in checkpoints.</param>
    /// <param name="exampleCount">Examples in the data.</param>
    /// <param name="observer">Progress and warnings.</param>
    /// <param name="precision">The run's mixed precision (forward and backward on its copy; the optimizer steps the float32 <paramref name="policy"/>), or null.</param>
    public TrainingLoop(KtoConfig config, CausalLm policy, string dataFingerprint, int exampleCount, ITrainingObserver observer, MixedPrecision? precision = null)
    {
        _precision = precision;
        _config = config;
        _policy = policy;
        _fingerprint = dataFingerprint;
        _observer = observer;
        _plan = BatchPlan.For(config, exampleCount);
    }

    /// <summary>The resolved run config, written into output_dir at the start of every run.</summary>
    public const string RunConfigFile = "run_config.json";

    /// <summary>The batch plan the loop follows.</summary>
    public BatchPlan Plan => _plan;

    /// <summary>A full_determinism run's exact sums, whose grid checkpoints keep and a resume restores; null otherwise.</summary>
    public Cluster.ExactSum? Exact { get; init; }

    /// <summary>Trains to the configured end (resuming first when asked); stops early at a step boundary on <paramref name="cancel"/>.</summary>
    /// <param name="forwardBackward">Runs forward and backward over step <c>step</c>'s (0-based) micro-batches (lists of
    /// dataset indices), accumulating gradients, and returns the step's metric sums.</param>
    /// <param name="describe">One line about the objective, for the start-up message.</param>
    /// <param name="cancel">Stops the run after the current step (a checkpoint is written).</param>
    /// <param name="evaluate">Evaluates the current weights (eval_strategy), returning the eval line's figures; null: no evaluation.</param>
    public TrainResult Run<TMetrics>(Func<int, IReadOnlyList<int[]>, TMetrics> forwardBackward, string describe, CancellationToken cancel = default,
        Func<Dictionary<string, double>>? evaluate = null)
        where TMetrics : IWindowMetrics<TMetrics>
    {
        KtoConfig c = _config;
        Directory.CreateDirectory(c.OutputDir);
        AtomicFile.WriteText(Path.Combine(c.OutputDir, RunConfigFile), KtoConfigReader.ToJson(c));
        int total = _plan.TotalSteps(c.NumTrainEpochs, c.MaxSteps);
        LrSchedule schedule = LrSchedule.For(c, total);
        using var optimizer = new AdamW(_policy.named_parameters().Select(p => (p.name, p.parameter)), c.AdamBeta1, c.AdamBeta2, c.AdamEpsilon, c.WeightDecay);
        var log = new MetricsLog(c.OutputDir);
        int step = Resume(optimizer, log);
        _observer.Info($"training: {total} steps ({_plan.StepsPerEpoch} per epoch), batch {c.PerDeviceTrainBatchSize} × {c.GradientAccumulationSteps} accumulation, {describe}");

        _policy.train();
        TMetrics window = TMetrics.Zero;
        var clock = Stopwatch.StartNew();
        int windowExamples = 0;
        string? lastCheckpoint = null;
        IReadOnlyDictionary<string, double> last = new Dictionary<string, double>();
        while (step < total && !cancel.IsCancellationRequested)
        {
            IReadOnlyList<int[]> microBatches = _plan.Step(step);
            double lr = schedule.At(step);
            optimizer.ZeroGrad();
            TMetrics m = forwardBackward(step, microBatches);
            _precision?.GradsToMasters();
            double gradNorm;
            if (_precision?.FinishStep() ?? true)
            {
                gradNorm = GradientClipping.ClipGlobalNorm(_policy.parameters(), c.MaxGradNorm);
                optimizer.Step(lr);
                _precision?.MastersToCompute();
            }
            else
            {
                gradNorm = double.PositiveInfinity; // logged as null
                _observer.Warn($"step {step + 1}: fp16 gradients overflowed; the optimizer step is skipped and the loss scale halved to {_precision!.LossScale}");
            }
            window += m;
            windowExamples += microBatches.Sum(b => b.Length);
            step++;

            var figures = m.ToDictionary();
            figures["grad_norm"] = gradNorm;
            figures["learning_rate"] = lr;
            _observer.Progress(new ProgressUpdate("train", step, total, figures));
            if (step % c.LoggingSteps == 0 || step == total)
            {
                double seconds = Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                var metrics = window.ToDictionary();
                metrics["grad_norm"] = gradNorm;
                metrics["learning_rate"] = lr;
                metrics["examples/s"] = windowExamples / seconds;
                metrics["tokens/s"] = window.Tokens / seconds;
                log.Append(step, (double)step / _plan.StepsPerEpoch, metrics);
                last = metrics;
                window = TMetrics.Zero;
                windowExamples = 0;
                clock.Restart();
            }
            if (evaluate is not null && KtoEvaluation.Due(c, step, total, _plan.StepsPerEpoch))
            {
                Dictionary<string, double> eval = evaluate();
                log.Append(step, (double)step / _plan.StepsPerEpoch, eval);
                string shown = string.Join("  ", eval.Where(kv => kv.Key is "eval_loss" or "eval_kl" or "eval_rewards/margins")
                    .Select(kv => kv.Key + " " + kv.Value.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture)));
                _observer.Info($"eval at step {step}: {shown}");
            }
            if (step % c.SaveSteps == 0 || step == total)
                lastCheckpoint = SaveCheckpoint(optimizer, step, total);
        }
        if (step < total)
        {
            lastCheckpoint = SaveCheckpoint(optimizer, step, total);
            _observer.Info($"stopped at step {step}; resume with --resume (resume_from_checkpoint \"{KtoConfigReader.ResumeLatest}\")");
        }
        return new TrainResult(step, lastCheckpoint ?? TrainingCheckpoint.Latest(c.OutputDir) ?? "", last);
    }

    private int Resume(AdamW optimizer, MetricsLog log)
    {
        KtoConfig c = _config;
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
        TrainerState state = TrainingCheckpoint.Restore(dir, _policy, optimizer, _precision, Exact);
        if (state.DatasetFingerprint != _fingerprint)
            throw new InvalidDataException($"{dir}: was trained on different data (fingerprint {state.DatasetFingerprint[..12]}…, now {_fingerprint[..12]}…)");
        log.TruncateAfter(state.GlobalStep);
        _observer.Info($"resumed from {dir} at step {state.GlobalStep}");
        return state.GlobalStep;
    }

    private string SaveCheckpoint(AdamW optimizer, int step, int total)
    {
        var state = new TrainerState(step, _fingerprint, total, (double)step / _plan.StepsPerEpoch);
        string path = TrainingCheckpoint.Save(_config.OutputDir, _policy, optimizer, state, _precision, Exact);
        if (_config.SaveTotalLimit is int keep) TrainingCheckpoint.Prune(_config.OutputDir, keep);
        return path;
    }
}
