using Kto.Domain.Loss;
using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// The KTO training step on one shard of a micro-batch, in the two phases a distributed step needs:
/// <list type="number">
/// <item><see cref="KlPartial"/>: policy log-probs of the shard's KL pairs, without gradient, minus the
/// reference's, as a (sum, count) partial. The caller adds the partials of all shards of the micro-batch and
/// takes <see cref="Loss.KlPartial.Clamped"/> as the global KL.</item>
/// <item><see cref="ForwardBackward(IReadOnlyList{TrainItem}, ReferenceLogps[], Loss.KlPartial, int, int)"/>: the loss of the shard's examples against that global KL, scaled so that
/// the gradients of all shards add up to the gradient of the micro-batch's mean loss (divided by the number of
/// micro-batches in the step); gradients accumulate into the policy's <c>.grad</c>.</item>
/// </list>
/// In one process the single shard is the whole micro-batch. The optimizer step is separate
/// (<see cref="AdamW"/>), so the caller can reduce gradients across processes in between.
/// </summary>
public sealed class KtoStepper
{
    private readonly CausalLm _policy;
    private readonly IReferenceModel _reference;
    private readonly KtoLossOptions _loss;
    private readonly int _padId;
    private readonly Device _device;

    /// <summary>Creates a stepper for <paramref name="policy"/> (not owned) and <paramref name="reference"/> (not owned).</summary>
    public KtoStepper(CausalLm policy, IReferenceModel reference, KtoLossOptions loss, int padId, Device device)
    {
        _policy = policy;
        _reference = reference;
        _loss = loss;
        _padId = padId;
        _device = device;
    }

    /// <summary>The run's mixed precision (the loss is multiplied by its loss scale before backward), or null.</summary>
    public MixedPrecision? Precision { get; init; }

    /// <summary>The run's <c>seed</c>: with LoRA dropout, each example's masks are seeded by (seed, <see cref="Step"/>, example index).</summary>
    public long DropoutSeed { get; init; }

    /// <summary>The optimizer step (0-based) the next calls compute; set it before each step.</summary>
    public int Step { get; set; }

    /// <summary>Chunked logits (the default, <see cref="SequenceLogProbs.Compute"/>); false only to measure the full-logits path.</summary>
    public bool ChunkedLogits { get; init; } = true;

    /// <summary>The shard's reference log-probs, which both phases use; get them once per shard.</summary>
    public ReferenceLogps[] Reference(IReadOnlyList<TrainItem> shard) => _reference.Score(shard);

    /// <summary>Phase 1: Σ (policy − reference) log-probs over the shard's KL pairs, no gradient.</summary>
    public KlPartial KlPartial(IReadOnlyList<TrainItem> shard, ReferenceLogps[] reference)
    {
        if (!_loss.LossType.UsesKl() || shard.Count == 0) return Loss.KlPartial.Empty;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using IDisposable? seeds = DropoutSeeds(shard, LoraDropoutSeeds.Pass.Kl);
        using SequenceBatch kl = SequenceBatch.Collate(shard.Select(i => (i.KlPromptIds, i.KlCompletionIds)).ToList(), _padId, _device);
        double[] policy = SequenceLogProbs.Compute(_policy, kl, withLogits: false, ChunkedLogits).Sum.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        double sum = 0;
        for (int i = 0; i < policy.Length; i++) sum += policy[i] - reference[i].Kl;
        return new KlPartial(sum, policy.Length);
    }

    /// <summary>Phase 2: forward and backward of the shard's examples; returns the shard's metric sums.</summary>
    /// <param name="shard">The shard's items.</param>
    /// <param name="reference">Their reference log-probs.</param>
    /// <param name="kl">The micro-batch's global KL (the clamped estimate), and its raw value for the log.</param>
    /// <param name="microBatchSize">Examples in the whole micro-batch (all shards).</param>
    /// <param name="microBatchesInStep">Micro-batches accumulated into this optimizer step.</param>
    public StepMetrics ForwardBackward(IReadOnlyList<TrainItem> shard, ReferenceLogps[] reference, KlPartial kl, int microBatchSize, int microBatchesInStep)
        => ForwardBackward(shard, reference, () => kl, microBatchSize, microBatchesInStep);

    /// <summary>
    /// As <see cref="ForwardBackward(IReadOnlyList{TrainItem}, ReferenceLogps[], Loss.KlPartial, int, int)"/>, asking for the KL
    /// only once the policy's forward pass is done: a data-parallel member's <paramref name="kl"/> waits there for the
    /// group's KL sum, which the slower members' KL passes hold up, instead of before the forward. Same bits.
    /// </summary>
    public StepMetrics ForwardBackward(IReadOnlyList<TrainItem> shard, ReferenceLogps[] reference, Func<KlPartial> kl, int microBatchSize, int microBatchesInStep)
    {
        if (shard.Count == 0) return StepMetrics.Zero;
        using var scope = torch.NewDisposeScope();
        return Forward(shard, reference, kl, microBatchSize, shardLoss =>
        {
            double scale = Precision?.LossScale ?? 1;
            (scale == 1 ? shardLoss.DividedBy(microBatchesInStep) : shardLoss.Times(scale / microBatchesInStep)).backward();
        });
    }

    /// <summary>
    /// Evaluation: the loss and metric sums of <paramref name="batch"/> (its own KL pairs, its own reference
    /// log-probs) without gradient, as TRL's prediction_step computes them; KL included once for the batch.
    /// </summary>
    public StepMetrics Evaluate(IReadOnlyList<TrainItem> batch, ReferenceLogps[] reference)
    {
        if (batch.Count == 0) return StepMetrics.Zero;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool training = _policy.training;
        _policy.eval(); // no dropout, as TRL's evaluation (model.eval())
        try
        {
            KlPartial kl = KlPartial(batch, reference);
            return Forward(batch, reference, () => kl, batch.Count, null) + MicroBatchMetrics(kl);
        }
        finally
        {
            _policy.train(training);
        }
    }

    private StepMetrics Forward(IReadOnlyList<TrainItem> shard, ReferenceLogps[] reference, Func<KlPartial> kl, int microBatchSize, Action<Tensor>? backward)
    {
        using IDisposable? seeds = DropoutSeeds(shard, LoraDropoutSeeds.Pass.Completion);
        using SequenceBatch batch = SequenceBatch.Collate(shard.Select(i => (i.Example.PromptIds, i.Example.CompletionIds)).ToList(), _padId, _device);
        SequenceLogProbs.Result policy = SequenceLogProbs.Compute(_policy, batch, chunked: ChunkedLogits);
        Tensor refLogps = torch.tensor(reference.Select(r => (float)r.Completion).ToArray(), device: _device);
        Tensor desirable = torch.tensor(shard.Select(i => i.Example.Label).ToArray(), device: _device);
        KtoLossOutput output = KtoLoss.Compute(policy.Sum, refLogps, desirable, kl().Clamped, _loss);

        // Σ over the shard / micro-batch size = this shard's part of the micro-batch mean.
        Tensor shardLoss = output.Losses.sum().DividedBy(microBatchSize);
        backward?.Invoke(shardLoss);

        double[] rewards = output.Rewards.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        double[] logps = policy.Sum.detach().to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        double[] logits = policy.LogitSum.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        double[] tokens = policy.TokenCount.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var m = new StepMetrics { LossSum = shardLoss.item<float>(), Tokens = shard.Sum(i => (long)i.TokenCount) };
        for (int i = 0; i < shard.Count; i++)
        {
            bool chosen = shard[i].Example.Label;
            m = m + (chosen
                ? new StepMetrics { ChosenCount = 1, ChosenRewardSum = rewards[i], ChosenLogpSum = logps[i], ChosenLogitSum = logits[i], ChosenTokens = (long)tokens[i] }
                : new StepMetrics { RejectedCount = 1, RejectedRewardSum = rewards[i], RejectedLogpSum = logps[i], RejectedLogitSum = logits[i], RejectedTokens = (long)tokens[i] });
        }
        return m;
    }

    /// <summary>Per-example dropout seeds for the rows of <paramref name="shard"/> while training with LoRA dropout, else null.</summary>
    private IDisposable? DropoutSeeds(IReadOnlyList<TrainItem> shard, LoraDropoutSeeds.Pass pass) =>
        _policy.training && LoraAdapters.HasDropout(_policy)
            ? LoraAdapters.DropoutSeeds(_policy, [.. shard.Select(i => LoraDropoutSeeds.ForRow(DropoutSeed, Step, i.Index, pass))])
            : null;

    /// <summary>The per-micro-batch KL entries of the metrics (added once per micro-batch, not per shard).</summary>
    public static StepMetrics MicroBatchMetrics(KlPartial kl) => new() { MicroBatches = 1, KlSum = kl.Clamped, KlRawSum = kl.Raw };
}
