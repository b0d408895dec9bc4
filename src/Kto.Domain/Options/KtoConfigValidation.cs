using Kto.Domain.Loss;

namespace Kto.Domain.Options;

/// <summary>Checks that a <see cref="KtoConfig"/>'s values make sense together.</summary>
public static class KtoConfigValidation
{
    /// <summary>The learning-rate schedules <c>lr_scheduler_type</c> accepts.</summary>
    public static readonly IReadOnlyList<string> Schedulers = ["linear", "cosine", "constant", "constant_with_warmup"];

    /// <summary>
    /// Throws a <see cref="ConfigException"/> naming every problem found, one per line as <c>FILE:LINE: "key" what</c>
    /// (the line of the key in the file; for a value the file does not set, the line of the other key of the relation
    /// if it sets that one, else <c>FILE: "key" (default) what</c>).
    /// </summary>
    /// <param name="c">The config.</param>
    /// <param name="source">The file (or other source) named in errors.</param>
    /// <param name="kind">KTO or SFT.</param>
    /// <param name="lineOf">1-based line of a top-level key in the file, or null when the file does not set it.</param>
    public static void Validate(KtoConfig c, string source, RunKind kind = RunKind.Kto, Func<string, int?>? lineOf = null)
    {
        var errors = new List<string>();
        void Require(bool ok, string key, string message, string? related = null)
        {
            if (ok) return;
            int? line = lineOf?.Invoke(key) ?? (related is null ? null : lineOf?.Invoke(related));
            string where = line is int l ? $"{source}:{l}: \"{key}\"" : lineOf is null ? $"{source}: \"{key}\"" : $"{source}: \"{key}\" (default)";
            errors.Add($"{where} {message}");
        }

        Require(c.ModelNameOrPath.Length > 0, "model_name_or_path", "is required (a checkpoint directory)");
        Require(c.DatasetPath.Length > 0, "dataset_path", "is required (a .jsonl or .parquet file)");
        Require(c.OutputDir.Length > 0, "output_dir", "must not be empty");
        Require(c.Beta > 0 && double.IsFinite(c.Beta), "beta", $"must be a positive number, got {c.Beta}");
        Require(c.DesirableWeight > 0 && double.IsFinite(c.DesirableWeight), "desirable_weight", $"must be positive, got {c.DesirableWeight}");
        Require(c.UndesirableWeight > 0 && double.IsFinite(c.UndesirableWeight), "undesirable_weight", $"must be positive, got {c.UndesirableWeight}");
        Require(c.MaxLength >= 2, "max_length", $"must be at least 2, got {c.MaxLength}");
        Require(c.MaxPromptLength >= 1, "max_prompt_length", $"must be at least 1, got {c.MaxPromptLength}");
        Require(c.MaxPromptLength < c.MaxLength, "max_prompt_length", $"({c.MaxPromptLength}) must be below max_length ({c.MaxLength}) to leave room for a completion", related: "max_length");
        Require(c.MaxCompletionLength is null or >= 1, "max_completion_length", $"must be at least 1 or null, got {c.MaxCompletionLength}");
        Require(c.LearningRate >= 0 && double.IsFinite(c.LearningRate), "learning_rate", $"must be ≥ 0, got {c.LearningRate}");
        Require(Schedulers.Contains(c.LrSchedulerType), "lr_scheduler_type", $"must be one of {string.Join(", ", Schedulers.Select(s => $"\"{s}\""))}, got \"{c.LrSchedulerType}\"");
        Require(c.WarmupRatio is >= 0 and <= 1, "warmup_ratio", $"must lie in [0, 1], got {c.WarmupRatio}");
        Require(c.WarmupSteps >= 0, "warmup_steps", $"must be ≥ 0, got {c.WarmupSteps}");
        Require(c.WeightDecay >= 0, "weight_decay", $"must be ≥ 0, got {c.WeightDecay}");
        Require(c.AdamBeta1 is >= 0 and < 1, "adam_beta1", $"must lie in [0, 1), got {c.AdamBeta1}");
        Require(c.AdamBeta2 is >= 0 and < 1, "adam_beta2", $"must lie in [0, 1), got {c.AdamBeta2}");
        Require(c.AdamEpsilon > 0, "adam_epsilon", $"must be positive, got {c.AdamEpsilon}");
        Require(c.MaxGradNorm >= 0, "max_grad_norm", $"must be ≥ 0 (0 turns clipping off), got {c.MaxGradNorm}");
        Require(!(c.Bf16 && c.Fp16), "fp16", "and bf16 are both true: choose one mixed precision", related: "bf16");
        Require(c.LoraR >= 1, "lora_r", $"must be at least 1, got {c.LoraR}");
        Require(c.LoraAlpha > 0, "lora_alpha", $"must be positive, got {c.LoraAlpha}");
        Require(c.LoraDropout is >= 0 and < 1, "lora_dropout", $"must be in [0, 1), got {c.LoraDropout}");
        Require(!(c.UsePeft && (c.Bf16 || c.Fp16) && c.LoraModulesToSave is { Count: > 0 }), "lora_modules_to_save", "with bf16/fp16 is not supported (the modules would train in half precision without float32 masters)", related: c.Bf16 ? "bf16" : "fp16");
        Require(c.DeterminismSlices >= 1, "determinism_slices", $"must be at least 1, got {c.DeterminismSlices}");
        Require(!(c.FullDeterminism && (c.Bf16 || c.Fp16)), "full_determinism", "with bf16/fp16 is not supported (train in float32)", related: c.Bf16 ? "bf16" : "fp16");
        Require(!(c.FullDeterminism && kind == RunKind.Sft), "full_determinism", "is for KTO runs (kto train and the cluster); kto sft does not use it");
        Require(c.EvalStrategy is "no" or "steps" or "epoch", "eval_strategy", $"must be \"no\", \"steps\" or \"epoch\", got \"{c.EvalStrategy}\"");
        Require(c.EvalStrategy == "no" || c.EvalDatasetPath is not null, "eval_strategy", $"\"{c.EvalStrategy}\" needs eval_dataset_path (the dataset to evaluate)");
        Require(c.EvalSteps is null or >= 1, "eval_steps", $"must be at least 1, got {c.EvalSteps}");
        Require(c.PerDeviceEvalBatchSize >= 1, "per_device_eval_batch_size", $"must be at least 1, got {c.PerDeviceEvalBatchSize}");
        Require(c.PerDeviceTrainBatchSize >= 1, "per_device_train_batch_size", $"must be at least 1, got {c.PerDeviceTrainBatchSize}");
        Require(kind == RunKind.Sft || c.PerDeviceTrainBatchSize > 1 || !c.LossType.UsesKl(), "per_device_train_batch_size",
            "is 1, but batch size must be > 1 for loss_type \"kto\": the KL reference point pairs each prompt with another example's completion (use 8–128, or loss_type \"apo_zero_unpaired\")", related: "loss_type");
        Require(c.GradientAccumulationSteps >= 1, "gradient_accumulation_steps", $"must be at least 1, got {c.GradientAccumulationSteps}");
        Require(c.MaxSteps > 0 || c.NumTrainEpochs > 0, "num_train_epochs", $"must be positive when max_steps is not set, got {c.NumTrainEpochs}", related: "max_steps");
        Require(c.MaxSteps == -1 || c.MaxSteps > 0, "max_steps", $"must be -1 or positive, got {c.MaxSteps}");
        Require(c.LoggingSteps >= 1, "logging_steps", $"must be at least 1, got {c.LoggingSteps}");
        Require(c.SaveSteps >= 1, "save_steps", $"must be at least 1, got {c.SaveSteps}");
        Require(c.SaveTotalLimit is null or >= 1, "save_total_limit", $"must be at least 1 or null, got {c.SaveTotalLimit}");
        Require(c.NumThreads >= 0, "num_threads", $"must be ≥ 0, got {c.NumThreads}");
        Require(Devices.DeviceSpec.TryParse(c.Device, out _), "device", $"must be \"cpu\", \"cuda\" or \"cuda:N\", got \"{c.Device}\"");
        if (errors.Count > 0)
            throw new ConfigException(string.Join("\n", errors));
    }
}
