using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Devices;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// Supervised fine-tuning on prompt/completion pairs with the loss on completion tokens only (TRL's
/// <c>completion_only_loss</c>): the mean next-token cross-entropy over a micro-batch's completion tokens. Same config
/// keys (minus KTO's), checkpoints, metrics and resume as <c>kto train</c>; this is how reference models are made.
/// Rows labelled false (when a KTO dataset is given) are left out: SFT imitates desirable completions only.
/// </summary>
public sealed class SftTrainer : IDisposable
{
    private readonly KtoConfig _config;
    private readonly ITrainingObserver _observer;
    private readonly Device _device;
    private readonly CausalLm _policy;
    private readonly MixedPrecision? _precision;
    private readonly IReadOnlyList<KtoExample> _examples;
    private readonly int _padId;
    private readonly string _fingerprint;

    /// <summary>Loads the model and data of <paramref name="config"/>.</summary>
    public SftTrainer(KtoConfig config, ITrainingObserver observer)
    {
        _config = config;
        _observer = observer;
        TrainingSetup.ConfigureTorch(config);
        _device = DeviceSpec.Resolve(config.Device);
        LmConfig modelConfig = ModelCheckpoint.LoadConfig(config.ModelNameOrPath);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(config.ModelNameOrPath, modelConfig);
        DatasetLoadOptions lengths = TrainingSetup.EffectiveLengths(config, modelConfig, observer) with { LabelOptional = true };
        LoadedDataset dataset = KtoDatasetLoader.Load(config.DatasetPath, tokenizer, lengths);
        foreach (string w in dataset.Warnings) observer.Warn(w);
        _examples = dataset.Examples.Where(e => e.Label).ToList();
        if (dataset.UndesirableCount > 0)
            observer.Info($"{dataset.UndesirableCount} example(s) labelled false left out: SFT trains on desirable completions only");
        if (_examples.Count == 0) throw new InvalidDataException($"{config.DatasetPath}: no example to fine-tune on");
        observer.Info($"dataset: {_examples.Count} prompt/completion examples, format {dataset.Format}");
        _padId = tokenizer.EosTokenId;
        _fingerprint = TrainingData.Build(_examples, 2, lengths).Fingerprint;
        _policy = ModelCheckpoint.Load(config.ModelNameOrPath, _device);
        if (TrainingSetup.UsesPeft(config)) TrainingSetup.ApplyPeft(config, _policy, observer);
        _precision = MixedPrecision.For(config, _policy);
    }

    /// <summary>The model being trained.</summary>
    public CausalLm Policy => _policy;

    /// <summary>Trains to the configured end; see <see cref="TrainingLoop"/>.</summary>
    public TrainResult Run(CancellationToken cancel = default)
    {
        var loop = new TrainingLoop(_config, _policy, _fingerprint, _examples.Count, _observer, _precision);
        return loop.Run(ForwardBackward, "supervised fine-tuning, loss on completion tokens", cancel);
    }

    private SftMetrics ForwardBackward(int step, IReadOnlyList<int[]> microBatches)
    {
        SftMetrics metrics = SftMetrics.Zero;
        foreach (int[] indices in microBatches)
        {
            using var scope = torch.NewDisposeScope();
            var seqs = indices.Select(i => (_examples[i].PromptIds, _examples[i].CompletionIds)).ToList();
            using SequenceBatch batch = SequenceBatch.Collate(seqs, _padId, _device);
            CausalLm model = _precision?.Compute ?? _policy;
            using IDisposable? seeds = LoraAdapters.HasDropout(model)
                ? LoraAdapters.DropoutSeeds(model, [.. indices.Select(i => LoraDropoutSeeds.ForRow(_config.Seed, step, i, LoraDropoutSeeds.Pass.Completion))])
                : null;
            Tensor h = model.HiddenStates(batch.Ids);                                     // (B, T, C)
            long t = h.shape[1];
            Tensor logits = model.Logits(h.narrow(1, 0, t - 1)).to_type(ScalarType.Float32); // (B, T−1, V)
            Tensor targets = batch.Ids.narrow(1, 1, t - 1);                               // (B, T−1)
            Tensor tokenNll = -logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
            Tensor count = batch.LabelMask.sum();
            Tensor loss = (tokenNll * batch.LabelMask).sum() / count;                     // mean over completion tokens
            double scale = _precision?.LossScale ?? 1;
            (scale == 1 ? loss.DividedBy(microBatches.Count) : loss.Times(scale / microBatches.Count)).backward();
            long correct = (logits.detach().argmax(-1).eq(targets).to_type(ScalarType.Float32) * batch.LabelMask).sum().item<float>() is float f ? (long)Math.Round(f) : 0;
            metrics += new SftMetrics
            {
                LossSum = loss.item<float>(),
                MicroBatches = 1,
                CorrectTokens = correct,
                CompletionTokens = (long)count.item<float>(),
                Tokens = seqs.Sum(s => (long)(s.PromptIds.Length + s.CompletionIds.Length)),
            };
        }
        return metrics;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _precision?.Dispose();
        _policy.Dispose();
    }
}
