using System.Diagnostics;
using Kto.Domain.Loss;
using Kto.Domain.Options;

namespace Kto.Domain.Training;

/// <summary>
/// Evaluation during training, as TRL's KTOTrainer evaluates (<c>eval_dataset</c>, <c>eval_strategy</c>,
/// <c>eval_steps</c>, <c>per_device_eval_batch_size</c>): the whole eval set in batches of
/// per_device_eval_batch_size, without gradient, each batch with its own KL pairs (built from the eval set itself, as
/// training builds them from each batch) and its own KL estimate; metrics under TRL's names with the <c>eval_</c>
/// prefix. <c>eval_loss</c> is the mean of the batch losses weighted by batch size (Trainer's evaluation loop); the
/// other figures are sums over examples divided by their counts, as the training lines; a class absent from the eval
/// set has no entries.
/// </summary>
public static class KtoEvaluation
{
    /// <summary>The prefix of every eval metric.</summary>
    public const string Prefix = "eval_";

    /// <summary>Whether <paramref name="config"/> evaluates after optimizer step <paramref name="step"/> (1-based) of <paramref name="total"/>.</summary>
    public static bool Due(KtoConfig config, int step, int total, int stepsPerEpoch) => config.EvalStrategy switch
    {
        "steps" => step % (config.EvalSteps ?? config.LoggingSteps) == 0,
        "epoch" => step % stepsPerEpoch == 0 || step == total,
        _ => false,
    };

    /// <summary>Evaluates the current weights of <paramref name="stepper"/>'s policy on <paramref name="data"/>.</summary>
    /// <param name="stepper">The run's stepper (its policy, loss options and pad id).</param>
    /// <param name="reference">Reference log-probs of the eval items (live, or precomputed for the eval set).</param>
    /// <param name="data">The eval set, with KL pairs built per batch of <paramref name="batchSize"/>.</param>
    /// <param name="batchSize">per_device_eval_batch_size.</param>
    /// <returns>The eval line's figures (<c>eval_loss</c>, <c>eval_kl</c>, <c>eval_rewards/chosen</c>, …, <c>eval_runtime</c> in seconds, <c>eval_samples_per_second</c>).</returns>
    public static Dictionary<string, double> Run(KtoStepper stepper, IReferenceModel reference, TrainingData data, int batchSize)
    {
        var clock = Stopwatch.StartNew();
        StepMetrics sum = StepMetrics.Zero;
        double weightedLoss = 0;
        for (int start = 0; start < data.Items.Count; start += batchSize)
        {
            var batch = data.Items.Skip(start).Take(batchSize).ToList();
            ReferenceLogps[] r = reference.Score(batch);
            StepMetrics m = stepper.Evaluate(batch, r);
            weightedLoss += m.LossSum * batch.Count;
            sum += m;
        }
        double seconds = Math.Max(1e-9, clock.Elapsed.TotalSeconds);
        var figures = sum.ToDictionary().ToDictionary(kv => Prefix + kv.Key, kv => kv.Value, StringComparer.Ordinal);
        figures[Prefix + "loss"] = weightedLoss / data.Items.Count;
        figures[Prefix + "runtime"] = seconds;
        figures[Prefix + "samples_per_second"] = data.Items.Count / seconds;
        return figures;
    }
}
