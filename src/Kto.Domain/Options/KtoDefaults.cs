using Kto.Domain.Loss;

namespace Kto.Domain.Options;

/// <summary>Defaults of <see cref="KtoConfig"/>; TRL's where TRL has the setting.</summary>
public static class KtoDefaults
{
    /// <summary>Where a run writes when output_dir is not given.</summary>
    public const string OutputDir = "runs/kto";

    /// <summary>TRL KTOConfig.beta.</summary>
    public const double Beta = 0.1;

    /// <summary>TRL KTOConfig.desirable_weight.</summary>
    public const double DesirableWeight = 1.0;

    /// <summary>TRL KTOConfig.undesirable_weight.</summary>
    public const double UndesirableWeight = 1.0;

    /// <summary>TRL KTOConfig.loss_type.</summary>
    public const KtoLossType LossType = KtoLossType.Kto;

    /// <summary>TRL KTOConfig.max_length.</summary>
    public const int MaxLength = 1024;

    /// <summary>TRL KTOConfig.max_prompt_length.</summary>
    public const int MaxPromptLength = 512;

    /// <summary>TRL KTOConfig.precompute_ref_log_probs.</summary>
    public const bool PrecomputeRefLogProbs = false;

    /// <summary>TRL KTOConfig.learning_rate (the paper's guidance: 5e-7 … 5e-6).</summary>
    public const double LearningRate = 1e-6;

    /// <summary>TrainingArguments.lr_scheduler_type.</summary>
    public const string LrSchedulerType = "linear";

    /// <summary>TrainingArguments.warmup_ratio.</summary>
    public const double WarmupRatio = 0.0;

    /// <summary>TrainingArguments.warmup_steps.</summary>
    public const int WarmupSteps = 0;

    /// <summary>TrainingArguments.weight_decay.</summary>
    public const double WeightDecay = 0.0;

    /// <summary>TrainingArguments.adam_beta1.</summary>
    public const double AdamBeta1 = 0.9;

    /// <summary>TrainingArguments.adam_beta2.</summary>
    public const double AdamBeta2 = 0.999;

    /// <summary>TrainingArguments.adam_epsilon.</summary>
    public const double AdamEpsilon = 1e-8;

    /// <summary>TrainingArguments.max_grad_norm.</summary>
    public const double MaxGradNorm = 1.0;

    /// <summary>TrainingArguments.per_device_train_batch_size.</summary>
    public const int PerDeviceTrainBatchSize = 8;

    /// <summary>TrainingArguments.gradient_accumulation_steps.</summary>
    public const int GradientAccumulationSteps = 1;

    /// <summary>TrainingArguments.num_train_epochs.</summary>
    public const double NumTrainEpochs = 3.0;

    /// <summary>TrainingArguments.max_steps (-1: derive from epochs).</summary>
    public const int MaxSteps = -1;

    /// <summary>TrainingArguments.seed.</summary>
    public const int Seed = 42;

    /// <summary>Shuffling on, like the Trainer's random sampler.</summary>
    public const bool Shuffle = true;

    /// <summary>TrainingArguments.logging_steps.</summary>
    public const int LoggingSteps = 500;

    /// <summary>TrainingArguments.save_steps.</summary>
    public const int SaveSteps = 500;

    /// <summary>TrainingArguments' <c>eval_strategy</c> default: no evaluation.</summary>
    public const string EvalStrategy = "no";

    /// <summary>TrainingArguments' <c>per_device_eval_batch_size</c> default.</summary>
    public const int PerDeviceEvalBatchSize = 8;

    /// <summary>The CPU backend runs everywhere.</summary>
    public const string Device = "cpu";

    /// <summary>0: leave libtorch's thread count alone.</summary>
    public const int NumThreads = 0;
}
