using Kto.Domain.Model;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>
/// How precomputed reference log-probs are produced: in <em>units</em> that follow the first epoch's visiting order
/// (one micro-batch each, at most <see cref="MaxUnitItems"/> examples), so that scoring can run just ahead of training
/// and a single process and the cluster's scorer pool batch the same examples together (and so get bit-identical
/// values).
/// </summary>
public static class ReferenceScoring
{
    /// <summary>Largest unit: its scores travel in one message far below Akka.Remote's 128000-byte frame.</summary>
    public const int MaxUnitItems = 2048;

    /// <summary>The scoring units of <paramref name="plan"/>: dataset indices, each index in exactly one unit.</summary>
    public static int[][] Units(BatchPlan plan)
    {
        int[] order = plan.EpochOrder(0);
        int size = Math.Clamp(plan.BatchSize, 1, MaxUnitItems);
        return [.. order.Chunk(size)];
    }

    /// <summary>Reference log-probs of <paramref name="items"/>' completions and KL pairs, as one batch.</summary>
    /// <param name="model">The frozen reference model.</param>
    /// <param name="items">The examples to score.</param>
    /// <param name="padId">Padding id.</param>
    /// <param name="device">Where batches go.</param>
    /// <param name="scoreKl">Whether KL pairs are scored (not for losses without the KL term; 0 then).</param>
    /// <param name="chunked">Chunked logits (<see cref="SequenceLogProbs.Compute"/>); false only to measure the full-logits path.</param>
    public static ReferenceLogps[] Score(CausalLm model, IReadOnlyList<TrainItem> items, int padId, Device device, bool scoreKl, bool chunked = true)
    {
        int batch = Math.Max(1, items.Count);
        double[] completion = SequenceLogProbs.Score(model, [.. items.Select(i => (i.Example.PromptIds, i.Example.CompletionIds))], padId, batch, device, chunked: chunked);
        double[] kl = scoreKl
            ? SequenceLogProbs.Score(model, [.. items.Select(i => (i.KlPromptIds, i.KlCompletionIds))], padId, batch, device, chunked: chunked)
            : new double[items.Count];
        return [.. completion.Select((c, k) => new ReferenceLogps(c, kl[k]))];
    }
}
