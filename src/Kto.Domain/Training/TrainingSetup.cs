using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Devices;
using Kto.Domain.Loss;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>Everything a run needs before its first step: device, data, policy, reference. Built by <see cref="Prepare"/>.</summary>
public sealed class TrainingSetup : IDisposable
{
    private TrainingSetup(KtoConfig config, Device device, ITextTokenizer tokenizer, CausalLm policy, TrainingData data, IReferenceModel reference)
    {
        Config = config;
        Device = device;
        Tokenizer = tokenizer;
        Policy = policy;
        Data = data;
        Reference = reference;
        Precision = MixedPrecision.For(config, policy);
    }

    /// <summary>The run config.</summary>
    public KtoConfig Config { get; }
    /// <summary>Where tensors live.</summary>
    public Device Device { get; }
    /// <summary>The checkpoint's tokenizer.</summary>
    public ITextTokenizer Tokenizer { get; }
    /// <summary>The policy at its starting weights (float32: with <c>bf16</c>/<c>fp16</c>, the master weights).</summary>
    public CausalLm Policy { get; }
    /// <summary>The half-precision copy and loss scaling of a <c>bf16</c>/<c>fp16</c> run, or null.</summary>
    public MixedPrecision? Precision { get; }
    /// <summary>The model forward and backward run on: <see cref="Policy"/>, or its half-precision copy.</summary>
    public CausalLm Compute => Precision?.Compute ?? Policy;
    /// <summary>Paired, fingerprinted examples.</summary>
    public TrainingData Data { get; }
    /// <summary>Live reference model or precomputed log-probs.</summary>
    public IReferenceModel Reference { get; }

    /// <summary>Applies num_threads and the seed; call before creating tensors.</summary>
    public static void ConfigureTorch(KtoConfig config)
    {
        if (config.NumThreads > 0) torch.set_num_threads(config.NumThreads);
        torch.manual_seed(config.Seed);
    }

    /// <summary>Loads and checks everything; reports warnings (imbalance, single class, drops) to <paramref name="observer"/>.</summary>
    /// <param name="config">The run config.</param>
    /// <param name="observer">Receives warnings, notes and precomputation progress.</param>
    /// <param name="reference">Reference log-probs that come from elsewhere (the cluster's scorer pool): when given, the
    /// reference model is never loaded.</param>
    public static TrainingSetup Prepare(KtoConfig config, ITrainingObserver observer, IReferenceModel? reference = null)
    {
        ConfigureTorch(config);
        Device device = DeviceSpec.Resolve(config.Device);
        var (data, modelConfig, tokenizer) = LoadData(config, observer);
        CausalLm policy = ModelCheckpoint.Load(config.ModelNameOrPath, device);
        if (UsesPeft(config))
        {
            ApplyPeft(config, policy, observer);
            // TRL with a PEFT model and no ref_model: the reference is the same model with its adapters off (or at their
            // starting weights when continuing an adapter).
            if (reference is null && config.RefModelNameOrPath is null && !config.PrecomputeRefLogProbs)
                reference = new PeftReference(policy, tokenizer.EosTokenId, device, config.LossType.UsesKl(), config.AdapterNameOrPath is not null);
        }
        reference ??= CreateReference(config, modelConfig, tokenizer, data, device, observer);
        var setup = new TrainingSetup(config, device, tokenizer, policy, data, reference);
        if (config.EvalStrategy != "no" && config.EvalDatasetPath is { } evalPath)
        {
            setup.EvalData = LoadEvalData(config, modelConfig, tokenizer, evalPath, observer);
            // A live reference scores any rows; precomputed scores are the training rows', so the eval set gets its own.
            setup.EvalReference = reference is LiveReference or PeftReference ? reference
                : CreateReference(config with { DatasetPath = evalPath }, modelConfig, tokenizer, setup.EvalData, device, observer);
        }
        return setup;
    }

    /// <summary>Whether <paramref name="config"/> trains LoRA adapters (use_peft, or an adapter to continue).</summary>
    public static bool UsesPeft(KtoConfig config) => config.UsePeft || config.AdapterNameOrPath is not null;

    /// <summary>
    /// Makes <paramref name="policy"/> the LoRA model of a use_peft run: under bf16/fp16 the frozen base is cast to the
    /// half dtype; adapters attached (B zero, A seeded by <c>seed</c>) or loaded from <c>adapter_name_or_path</c>; their
    /// dropout off under <c>disable_dropout</c>. Reports what trains.
    /// </summary>
    /// <exception cref="ArgumentException">A target or saved module matches nothing (the message lists the names).</exception>
    /// <exception cref="InvalidDataException">The adapter to continue does not fit the base.</exception>
    public static void ApplyPeft(KtoConfig config, CausalLm policy, ITrainingObserver observer)
    {
        MixedPrecision.CastBase(config, policy);
        IReadOnlyList<string> adapted;
        using (var g = new Generator((ulong)config.Seed)) adapted = LoraAdapters.Attach(policy, config.LoraOptions, g);
        if (config.AdapterNameOrPath is { } dir)
        {
            LoraAdapters.LoadWeights(policy, dir);
            observer.Info($"LoRA: continuing the adapter in {dir}");
        }
        if (config.DisableDropout) LoraAdapters.SetDropout(policy, 0);
        long trainable = policy.parameters().Where(p => p.requires_grad).Sum(p => p.numel()), total = policy.parameters().Sum(p => p.numel());
        string saved = config.LoraModulesToSave is { Count: > 0 } m ? $" and {string.Join(", ", m)} in full" : "";
        string dropout = config.LoraDropout == 0 ? "no dropout" : config.DisableDropout ? $"lora_dropout {config.LoraDropout} off (disable_dropout)" : $"lora_dropout {config.LoraDropout}, seeded per example";
        observer.Info($"LoRA: r {config.LoraR}, alpha {config.LoraAlpha} on {adapted.Count} modules{saved}; {trainable:N0} of {total:N0} parameters train ({100.0 * trainable / total:0.00} %); {dropout}");
    }

    /// <summary>The adapter the reference model carries: adapter_name_or_path's starting weights when no ref_model_name_or_path is given, else none.</summary>
    public static string? ReferenceAdapter(KtoConfig config) => config.RefModelNameOrPath is null ? config.AdapterNameOrPath : null;

    /// <summary>The eval set of a run that evaluates (<c>eval_dataset_path</c>), KL pairs built per eval batch; null otherwise.</summary>
    public TrainingData? EvalData { get; private set; }

    /// <summary>Reference log-probs of the eval set (the run's live reference, or the eval set's precomputed ones), or null.</summary>
    public IReferenceModel? EvalReference { get; private set; }

    private static TrainingData LoadEvalData(KtoConfig config, LmConfig modelConfig, ITextTokenizer tokenizer, string path, ITrainingObserver observer)
    {
        DatasetLoadOptions lengths = EffectiveLengths(config, modelConfig, NullObserver.Instance);
        LoadedDataset eval = KtoDatasetLoader.Load(path, tokenizer, lengths);
        foreach (string w in eval.Warnings) observer.Warn($"eval: {w}");
        observer.Info($"eval dataset: {eval.Examples.Count} examples ({eval.DesirableCount} desirable, {eval.UndesirableCount} undesirable), format {eval.Format}; "
            + $"evaluated {(config.EvalStrategy == "epoch" ? "every epoch" : $"every {config.EvalSteps ?? config.LoggingSteps} steps")}");
        if (config.LossType.UsesKl() && eval.Examples.Count < 2)
            throw new InvalidDataException($"{path}: loss_type \"kto\" needs at least two eval examples to form KL pairs");
        return TrainingData.Build(eval.Examples, config.PerDeviceEvalBatchSize, lengths);
    }

    /// <summary>
    /// Tokenizes, checks and pairs the run's dataset exactly as training sees it (the policy's tokenizer, effective
    /// lengths, KL pairs); reports warnings to <paramref name="observer"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The data or the model config is unusable (the message names the file).</exception>
    public static (TrainingData Data, LmConfig Model, ITextTokenizer Tokenizer) LoadData(KtoConfig config, ITrainingObserver observer)
    {
        LmConfig modelConfig = ModelCheckpoint.LoadConfig(config.ModelNameOrPath);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(config.ModelNameOrPath, modelConfig);
        if (tokenizer.VocabSize > modelConfig.VocabSize)
            throw new InvalidDataException($"{config.ModelNameOrPath}: vocab_size {modelConfig.VocabSize} is smaller than the {tokenizer.Name} tokenizer's {tokenizer.VocabSize}");

        DatasetLoadOptions lengths = EffectiveLengths(config, modelConfig, observer);
        LoadedDataset dataset = KtoDatasetLoader.Load(config.DatasetPath, tokenizer, lengths);
        foreach (string w in dataset.Warnings) observer.Warn(w);
        if (dataset.DroppedNoRoom > 0)
            observer.Warn($"{dataset.DroppedNoRoom} example(s) dropped: their prompt left no room for a completion within max_length {lengths.MaxLength}");
        observer.Info($"dataset: {dataset.Examples.Count} examples ({dataset.DesirableCount} desirable, {dataset.UndesirableCount} undesirable), format {dataset.Format}");
        string? imbalance = ClassImbalance.Check(dataset.DesirableCount, dataset.UndesirableCount, config.DesirableWeight, config.UndesirableWeight);
        if (imbalance != null) observer.Warn(imbalance);
        if (config.LossType.UsesKl() && dataset.Examples.Count < 2)
            throw new InvalidDataException($"{config.DatasetPath}: loss_type \"kto\" needs at least two examples to form KL pairs");
        return (TrainingData.Build(dataset.Examples, config.PerDeviceTrainBatchSize, lengths), modelConfig, tokenizer);
    }

    /// <summary>The reference model's directory: ref_model_name_or_path, or the policy's starting checkpoint.</summary>
    public static string ReferenceDir(KtoConfig config) => config.RefModelNameOrPath ?? config.ModelNameOrPath;

    /// <summary>SHA-256 (hex) of the reference weights: with the dataset fingerprint, it keys precomputed log-probs.</summary>
    public static string ReferenceHash(KtoConfig config)
    {
        string single = Path.Combine(ReferenceDir(config), ModelCheckpoint.WeightsFile);
        // One weights file: its SHA-256 (the key stored scores already have); shards: the identity of every file.
        string weights = File.Exists(single) ? AtomicFile.Sha256(single) : AtomicFile.Sha256Text(Cluster.ModelIdentity.Of(ReferenceDir(config)));
        if (ReferenceAdapter(config) is { } adapter) weights = AtomicFile.Sha256Text($"{weights}|{AtomicFile.Sha256(Path.Combine(adapter, LoraAdapters.WeightsFile))}");
        // Scores computed in another precision are other values.
        return MixedPrecision.ComputeDtype(config) is { } dtype ? AtomicFile.Sha256Text($"{weights}|{dtype}") : weights;
    }

    /// <summary>max_length capped at the model's n_positions (or max_position_embeddings); max_prompt_length as configured.</summary>
    /// <exception cref="InvalidDataException">The model cannot run sequences of that length (a sliding window shorter than it).</exception>
    public static DatasetLoadOptions EffectiveLengths(KtoConfig config, LmConfig model, ITrainingObserver observer)
    {
        int maxLength = config.MaxLength;
        if (maxLength > model.MaxPositions)
        {
            observer.Info($"max_length {maxLength} exceeds the model's {model.MaxPositionsKey}; using {model.MaxPositions}");
            maxLength = model.MaxPositions;
        }
        model.CheckSequenceLength(maxLength, Path.Combine(config.ModelNameOrPath, ModelCheckpoint.ConfigFile));
        return new DatasetLoadOptions(maxLength, config.MaxPromptLength, config.MaxCompletionLength, ModelVocabSize: model.VocabSize, ChatTemplate: config.ChatTemplate);
    }

    private static IReferenceModel CreateReference(KtoConfig config, LmConfig policyConfig, ITextTokenizer tokenizer, TrainingData data, Device device, ITrainingObserver observer)
    {
        string refDir = ReferenceDir(config);
        LmConfig refConfig = ModelCheckpoint.LoadConfig(refDir);
        ITextTokenizer refTokenizer = TokenizerRegistry.ForModel(refDir, refConfig);
        if (refTokenizer.Name != tokenizer.Name || refConfig.VocabSize != policyConfig.VocabSize)
            throw new InvalidDataException($"{refDir}: the reference model's tokenizer/vocabulary ({refTokenizer.Name}, {refConfig.VocabSize}) differs from the policy's ({tokenizer.Name}, {policyConfig.VocabSize})");
        bool kl = config.LossType.UsesKl();
        if (!config.PrecomputeRefLogProbs)
            return new LiveReference(LoadReference(config, refDir, device), tokenizer.EosTokenId, device, kl);

        string refHash = ReferenceHash(config);
        string cachePath = ReferenceLogpsCache.PathFor(Path.Combine(config.OutputDir, "cache"), data.Fingerprint, refHash);
        ReferenceLogps[]? cached = ReferenceLogpsCache.TryRead(cachePath, data.Fingerprint, refHash, data.Items.Count);
        if (cached != null)
        {
            observer.Info($"reference log-probs: reusing {cachePath}");
            return new PrecomputedReference(cached);
        }
        observer.Info($"reference log-probs: one pass over {data.Items.Count} examples with {refDir}");
        using (CausalLm refModel = LoadReference(config, refDir, device))
        {
            // The same units, in the same order, as the cluster's scorer pool: both give bit-identical values.
            var values = new ReferenceLogps[data.Items.Count];
            int done = 0;
            foreach (int[] unit in ReferenceScoring.Units(BatchPlan.For(config, data.Items.Count)))
            {
                ReferenceLogps[] scored = ReferenceScoring.Score(refModel, [.. unit.Select(i => data.Items[i])], tokenizer.EosTokenId, device, kl);
                for (int k = 0; k < unit.Length; k++) values[unit[k]] = scored[k];
                done += unit.Length;
                observer.Progress(new ProgressUpdate("precompute", done, data.Items.Count, EmptyFigures));
            }
            ReferenceLogpsCache.Write(cachePath, data.Fingerprint, refHash, values);
            observer.Info($"reference log-probs cached in {cachePath}; the reference model is not kept in memory");
            return new PrecomputedReference(values);
        }
    }

    private static readonly IReadOnlyDictionary<string, double> EmptyFigures = new Dictionary<string, double>();

    /// <summary>The reference model of <paramref name="dir"/> (with the adapter to continue, see <see cref="ReferenceAdapter"/>), in the run's compute dtype (a <c>bf16</c> run scores its reference in bfloat16 too, as under autocast).</summary>
    public static CausalLm LoadReference(KtoConfig config, string dir, Device device)
    {
        CausalLm model = ModelCheckpoint.Load(dir, device);
        if (MixedPrecision.ComputeDtype(config) is { } dtype) model.to(dtype);
        if (dir == ReferenceDir(config) && ReferenceAdapter(config) is { } adapter) LoraAdapters.Load(model, adapter); // float32 adapter on the base, as the policy's
        return model;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!ReferenceEquals(EvalReference, Reference)) EvalReference?.Dispose();
        Reference.Dispose();
        Precision?.Dispose();
        Policy.Dispose();
    }
}
