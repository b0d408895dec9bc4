using Kto.Domain.Loss;

namespace Kto.Domain.Options;

/// <summary>
/// A KTO run: TRL's <c>KTOConfig</c> (and the <c>TrainingArguments</c> it inherits) under the same snake_case
/// names and defaults, plus the few settings a standalone tool needs (model and dataset paths, device).
/// Every default is a constant of <see cref="KtoDefaults"/>. Read one with <see cref="KtoConfigReader"/>.
/// </summary>
public sealed record KtoConfig
{
    // ---- model and data -------------------------------------------------------------------------------

    /// <summary><c>model_name_or_path</c>: checkpoint directory of the policy's starting weights (required).</summary>
    public string ModelNameOrPath { get; init; } = "";

    /// <summary><c>ref_model_name_or_path</c>: reference checkpoint; null = the policy's starting weights.</summary>
    public string? RefModelNameOrPath { get; init; }

    /// <summary><c>dataset_path</c>: a .jsonl or .parquet file in one of TRL's KTO formats (required).</summary>
    public string DatasetPath { get; init; } = "";

    /// <summary><c>output_dir</c>: where checkpoints, metrics.jsonl and caches go.</summary>
    public string OutputDir { get; init; } = KtoDefaults.OutputDir;

    // ---- KTO ------------------------------------------------------------------------------------------

    /// <summary><c>beta</c>: temperature of the loss.</summary>
    public double Beta { get; init; } = KtoDefaults.Beta;

    /// <summary><c>desirable_weight</c>: weight of desirable examples' losses.</summary>
    public double DesirableWeight { get; init; } = KtoDefaults.DesirableWeight;

    /// <summary><c>undesirable_weight</c>: weight of undesirable examples' losses.</summary>
    public double UndesirableWeight { get; init; } = KtoDefaults.UndesirableWeight;

    /// <summary><c>loss_type</c>: "kto" or "apo_zero_unpaired".</summary>
    public KtoLossType LossType { get; init; } = KtoDefaults.LossType;

    /// <summary><c>max_length</c>: longest prompt + completion, in tokens.</summary>
    public int MaxLength { get; init; } = KtoDefaults.MaxLength;

    /// <summary><c>max_prompt_length</c>: longest prompt kept when prompt + completion is too long.</summary>
    public int MaxPromptLength { get; init; } = KtoDefaults.MaxPromptLength;

    /// <summary>
    /// <c>chat_template</c>: a Jinja chat template for conversational rows, overriding the model's own (in the config
    /// file: the template's text, or the path of a <c>.jinja</c> file relative to the config, read when the config is
    /// loaded). Null: the model's <c>tokenizer_config.json</c> template, else our transcript (docs/data-formats.md).
    /// </summary>
    public string? ChatTemplate { get; init; }

    /// <summary><c>max_completion_length</c>: optional cap on completion tokens; null = max_length − prompt.</summary>
    public int? MaxCompletionLength { get; init; }

    /// <summary><c>precompute_ref_log_probs</c>: score the data under the reference once, before training.</summary>
    public bool PrecomputeRefLogProbs { get; init; } = KtoDefaults.PrecomputeRefLogProbs;

    // ---- optimisation ---------------------------------------------------------------------------------

    /// <summary><c>learning_rate</c>: peak AdamW learning rate.</summary>
    public double LearningRate { get; init; } = KtoDefaults.LearningRate;

    /// <summary><c>lr_scheduler_type</c>: "linear", "cosine", "constant" or "constant_with_warmup".</summary>
    public string LrSchedulerType { get; init; } = KtoDefaults.LrSchedulerType;

    /// <summary><c>warmup_ratio</c>: share of the total steps spent warming up (used when warmup_steps is 0).</summary>
    public double WarmupRatio { get; init; } = KtoDefaults.WarmupRatio;

    /// <summary><c>warmup_steps</c>: linear warm-up steps; overrides warmup_ratio when &gt; 0.</summary>
    public int WarmupSteps { get; init; } = KtoDefaults.WarmupSteps;

    /// <summary><c>weight_decay</c>: AdamW decoupled weight decay.</summary>
    public double WeightDecay { get; init; } = KtoDefaults.WeightDecay;

    /// <summary><c>adam_beta1</c>.</summary>
    public double AdamBeta1 { get; init; } = KtoDefaults.AdamBeta1;

    /// <summary><c>adam_beta2</c>.</summary>
    public double AdamBeta2 { get; init; } = KtoDefaults.AdamBeta2;

    /// <summary><c>adam_epsilon</c>.</summary>
    public double AdamEpsilon { get; init; } = KtoDefaults.AdamEpsilon;

    /// <summary><c>max_grad_norm</c>: clip the global gradient L2 norm to this; 0 turns clipping off.</summary>
    public double MaxGradNorm { get; init; } = KtoDefaults.MaxGradNorm;

    /// <summary>
    /// <c>bf16</c> (TrainingArguments): forward and backward in bfloat16 on a copy of the model, with float32 master
    /// weights, gradients and optimizer state (<see cref="Training.MixedPrecision"/>); the reference model runs in
    /// bfloat16 too. False (the default): everything in float32.
    /// </summary>
    public bool Bf16 { get; init; }

    /// <summary><c>use_peft</c> (TRL's ModelConfig): train LoRA adapters on the frozen base (<see cref="Model.LoraAdapters"/>); the reference is the base with the adapters off unless ref_model_name_or_path is given.</summary>
    public bool UsePeft { get; init; }

    /// <summary><c>lora_r</c>: adapter rank (TRL's default 16).</summary>
    public int LoraR { get; init; } = 16;

    /// <summary><c>lora_alpha</c> (TRL's default 32).</summary>
    public double LoraAlpha { get; init; } = 32;

    /// <summary>
    /// <c>lora_dropout</c> (TRL's default 0.05): dropout on the adapters' input while training. It acts only with
    /// <see cref="DisableDropout"/> false; each example's masks are seeded by (seed, step, example), see <see cref="Model.LoraDropoutSeeds"/>.
    /// </summary>
    public double LoraDropout { get; init; } = 0.05;

    /// <summary>
    /// <c>disable_dropout</c> (TRL's KTOConfig, default true): no dropout while training. TRL zeroes every
    /// <c>nn.Dropout</c> of the model, which includes PEFT's lora_dropout; the base models here have no dropout layers,
    /// so this decides whether <see cref="LoraDropout"/> acts.
    /// </summary>
    public bool DisableDropout { get; init; } = true;

    /// <summary><c>lora_modules_to_save</c> (TRL's ModelConfig; PEFT's modules_to_save): modules trained in full beside the adapters and saved in the adapter (e.g. lm_head).</summary>
    public IReadOnlyList<string>? LoraModulesToSave { get; init; }

    /// <summary>
    /// <c>adapter_name_or_path</c>: a PEFT LoRA adapter directory to continue training from (implies use_peft; r,
    /// alpha, target and saved modules come from its adapter_config.json). Without ref_model_name_or_path the reference
    /// is the base with this adapter at its starting weights, as TRL's frozen "ref" adapter copy.
    /// </summary>
    public string? AdapterNameOrPath { get; init; }

    /// <summary><c>lora_target_modules</c>: module names (q_proj, c_attn, …) or "all-linear"; null: PEFT's defaults for the architecture.</summary>
    public IReadOnlyList<string>? LoraTargetModules { get; init; }

    /// <summary><c>use_rslora</c>: scaling lora_alpha/√r.</summary>
    public bool UseRslora { get; init; }

    /// <summary>The LoRA configuration of a <see cref="UsePeft"/> run.</summary>
    public Model.LoraOptions LoraOptions => new(LoraR, LoraAlpha, LoraDropout, LoraTargetModules, UseRslora, LoraModulesToSave);

    /// <summary><c>fp16</c> (TrainingArguments): as <see cref="Bf16"/> in float16, with dynamic loss scaling (a step whose gradients overflow is skipped and the scale halved).</summary>
    public bool Fp16 { get; init; }

    /// <summary>
    /// <c>full_determinism</c> (TrainingArguments' name): a cluster run's weights, optimizer state and metrics are the
    /// bits of <c>kto train</c> on the same config, hardware and thread count, whatever the membership: each micro-batch
    /// is cut into <see cref="DeterminismSlices"/> fixed slices computed one by one, and their gradients, KL and metric
    /// sums are added exactly (<see cref="Cluster.ExactSum"/>). Not with bf16/fp16.
    /// </summary>
    public bool FullDeterminism { get; init; }

    /// <summary>
    /// <c>balance_shards</c> (false): in a cluster run, the coordinator gives each member a share of every micro-batch
    /// (of its slices under full_determinism) by its measured seconds per example (<see cref="Cluster.ShardBalance"/>),
    /// for trainers of unequal speed; off, the shares are equal.
    /// </summary>
    public bool BalanceShards { get; init; }

    /// <summary><c>determinism_slices</c>: slices per micro-batch under full_determinism (4): the most trainers that can
    /// share a step; more slices cost more per step (each is a forward and backward of its own).</summary>
    public int DeterminismSlices { get; init; } = 4;

    /// <summary><c>per_device_train_batch_size</c>: examples per forward/backward (the KL batch).</summary>
    public int PerDeviceTrainBatchSize { get; init; } = KtoDefaults.PerDeviceTrainBatchSize;

    /// <summary><c>gradient_accumulation_steps</c>: micro-batches per optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = KtoDefaults.GradientAccumulationSteps;

    /// <summary><c>num_train_epochs</c>: passes over the data (fractions allowed); ignored when max_steps &gt; 0.</summary>
    public double NumTrainEpochs { get; init; } = KtoDefaults.NumTrainEpochs;

    /// <summary><c>max_steps</c>: total optimizer steps; -1 = from num_train_epochs.</summary>
    public int MaxSteps { get; init; } = KtoDefaults.MaxSteps;

    /// <summary><c>seed</c>: seeds shuffling and anything random.</summary>
    public int Seed { get; init; } = KtoDefaults.Seed;

    /// <summary><c>data_seed</c>: seed of the data order; null = seed.</summary>
    public int? DataSeed { get; init; }

    /// <summary><c>shuffle</c>: reshuffle the examples every epoch (seeded); false keeps dataset order.</summary>
    public bool Shuffle { get; init; } = KtoDefaults.Shuffle;

    // ---- bookkeeping ----------------------------------------------------------------------------------

    /// <summary><c>logging_steps</c>: append a metrics line every this many optimizer steps (and at the end).</summary>
    public int LoggingSteps { get; init; } = KtoDefaults.LoggingSteps;

    /// <summary><c>eval_dataset_path</c>: a second dataset (any supported format) evaluated during training; null: none.</summary>
    public string? EvalDatasetPath { get; init; }

    /// <summary><c>eval_strategy</c>: "no" (TrainingArguments' default), "steps" (every <see cref="EvalSteps"/>) or "epoch" (at the end of every epoch).</summary>
    public string EvalStrategy { get; init; } = KtoDefaults.EvalStrategy;

    /// <summary><c>eval_steps</c>: evaluate every this many optimizer steps under "steps"; null: <see cref="LoggingSteps"/>, as TrainingArguments.</summary>
    public int? EvalSteps { get; init; }

    /// <summary><c>per_device_eval_batch_size</c>: eval examples per forward pass (and per KL-pairing batch, as training's).</summary>
    public int PerDeviceEvalBatchSize { get; init; } = KtoDefaults.PerDeviceEvalBatchSize;

    /// <summary><c>save_steps</c>: write a checkpoint every this many optimizer steps (and at the end).</summary>
    public int SaveSteps { get; init; } = KtoDefaults.SaveSteps;

    /// <summary><c>save_total_limit</c>: keep at most this many checkpoints (oldest deleted); null keeps all.</summary>
    public int? SaveTotalLimit { get; init; }

    /// <summary><c>overwrite_output_dir</c>: start afresh even though output_dir holds checkpoints of an earlier run.</summary>
    public bool OverwriteOutputDir { get; init; }

    /// <summary><c>resume_from_checkpoint</c>: a checkpoint directory, or "latest" for the newest in output_dir.</summary>
    public string? ResumeFromCheckpoint { get; init; }

    /// <summary><c>device</c>: "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = KtoDefaults.Device;

    /// <summary><c>num_threads</c>: CPU threads for tensor math; 0 = the library's default.</summary>
    public int NumThreads { get; init; } = KtoDefaults.NumThreads;

    /// <summary>The loss hyper-parameters as the loss function takes them.</summary>
    public KtoLossOptions LossOptions => new(Beta, LossType, DesirableWeight, UndesirableWeight);

    /// <summary>The seed of the data order.</summary>
    public int EffectiveDataSeed => DataSeed ?? Seed;
}
