using System.Globalization;
using System.Text.Json.Nodes;

namespace Kto.Domain.Evaluation;

/// <summary>What <see cref="Evaluator"/> measured.</summary>
/// <param name="Task">The checker's task name.</param>
/// <param name="Prompts">Held-out prompts evaluated.</param>
/// <param name="GreedyAccuracy">Share of prompts whose greedy completion the checker accepts.</param>
/// <param name="SampledDesirableRate">Share of sampled completions the checker accepts.</param>
/// <param name="Samples">Completions sampled in all.</param>
/// <param name="MeanLogRatio">Mean over sampled completions of log π(y|x) − log π_ref(y|x) (an estimate of KL(π‖π_ref)); null without a reference.</param>
/// <param name="MeanLogRatioDesirable">The same over the accepted samples only; null without a reference or such samples.</param>
/// <param name="MeanLogRatioUndesirable">The same over the rejected samples only; null without a reference or such samples.</param>
public sealed record EvalReport(
    string Task, int Prompts, double GreedyAccuracy, double SampledDesirableRate, int Samples,
    double? MeanLogRatio, double? MeanLogRatioDesirable, double? MeanLogRatioUndesirable)
{
    /// <summary>The report as a JSON object (with the model paths and sampling settings added by the caller).</summary>
    public JsonObject ToJson(string model, string? reference, EvalOptions options) => new()
    {
        ["model"] = model,
        ["reference"] = reference,
        ["task"] = Task,
        ["prompts"] = Prompts,
        ["greedy_accuracy"] = GreedyAccuracy,
        ["sampled_desirable_rate"] = SampledDesirableRate,
        ["samples"] = Samples,
        ["samples_per_prompt"] = options.SamplesPerPrompt,
        ["temperature"] = options.Temperature,
        ["seed"] = options.Seed,
        ["mean_log_ratio"] = MeanLogRatio,
        ["mean_log_ratio_desirable"] = MeanLogRatioDesirable,
        ["mean_log_ratio_undesirable"] = MeanLogRatioUndesirable,
    };

    /// <summary>One line for people.</summary>
    public override string ToString()
    {
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{Task}: greedy accuracy {GreedyAccuracy:P1}, desirable rate under sampling {SampledDesirableRate:P1} ({Samples} samples)");
        return MeanLogRatio is double r ? line + string.Create(CultureInfo.InvariantCulture, $", mean log-ratio vs reference {r:0.000}") : line;
    }
}
