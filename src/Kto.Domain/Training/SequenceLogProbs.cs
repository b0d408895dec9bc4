using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>Log-probs of completions under a causal LM.</summary>
public static class SequenceLogProbs
{
    /// <summary>Per-sequence results of <see cref="Compute"/>.</summary>
    /// <param name="Sum">(B) Σ over completion tokens of log p(token | prefix): never length-averaged.</param>
    /// <param name="LogitSum">(B) Σ over completion tokens of the token's mean logit (over the vocabulary), detached.</param>
    /// <param name="TokenCount">(B) completion tokens per sequence.</param>
    public sealed record Result(Tensor Sum, Tensor LogitSum, Tensor TokenCount);

    /// <summary>Runs <paramref name="model"/> on <paramref name="batch"/> and sums completion log-probs.</summary>
    /// <param name="model">The causal LM.</param>
    /// <param name="batch">Right-padded sequences and their completion mask.</param>
    /// <param name="withLogits">Also compute the mean-logit sums (for the logits/* metrics).</param>
    /// <param name="chunked">Form logits only at completion positions, a chunk of rows at a time in forward and backward
    /// (<see cref="ChunkedTokenLogProbs"/>; the default): memory does not grow with B·T·V. False: the whole (B, T−1, V)
    /// logits and their log-softmax, as a plain loop does (kept for <c>kto bench step --naive-logits</c>).</param>
    public static Result Compute(CausalLm model, SequenceBatch batch, bool withLogits = true, bool chunked = true)
    {
        Tensor h = model.HiddenStates(batch.Ids);                           // (B, T, C)
        long b = h.shape[0], t = h.shape[1], c = h.shape[2];
        Tensor predicting = h.narrow(1, 0, t - 1);                          // (B, T−1, C): position j predicts token j+1
        if (!chunked)
        {
            Tensor logits = model.Logits(predicting);                       // (B, T−1, V); the last position is never needed
            Tensor targetIds = batch.Ids.narrow(1, 1, t - 1).unsqueeze(-1); // (B, T−1, 1)
            Tensor tokenLogps = logits.log_softmax(-1).gather(-1, targetIds).squeeze(-1); // (B, T−1)
            Tensor total = (tokenLogps * batch.LabelMask).sum(1);          // (B)
            Tensor logitTotal = withLogits
                ? (model.MeanLogit(predicting.detach()).detach() * batch.LabelMask).sum(1)
                : torch.zeros_like(total);
            return new Result(total, logitTotal, batch.LabelMask.sum(1));
        }
        // Only completion positions are scored: gather them (N of the B·(T−1)), score them, and sum per sequence.
        Tensor positions = batch.LabelMask.reshape(-1).nonzero().squeeze(-1);                        // (N) in [0, B·(T−1))
        Tensor hidden = predicting.reshape(b * (t - 1), c).index_select(0, positions);              // (N, C)
        Tensor targets = batch.Ids.narrow(1, 1, t - 1).reshape(-1).index_select(0, positions);     // (N)
        Tensor rows = positions.DividedBy(t - 1, RoundingMode.floor);                                 // (N) sequence of each
        Tensor sum = torch.zeros(b, dtype: ScalarType.Float32, device: h.device).index_add(0, rows, model.TokenLogProbs(hidden, targets), Scalars.One);
        Tensor logitSum = withLogits
            ? torch.zeros(b, dtype: ScalarType.Float32, device: h.device).index_add(0, rows, model.MeanLogit(hidden.detach()).detach().to_type(ScalarType.Float32), Scalars.One)
            : torch.zeros_like(sum);
        return new Result(sum, logitSum, batch.LabelMask.sum(1));
    }

    /// <summary>Summed completion log-probs of many sequences, without gradient, <paramref name="batchSize"/> at a time.</summary>
    public static double[] Score(CausalLm model, IReadOnlyList<(int[] Prompt, int[] Completion)> sequences, int padId, int batchSize, Device device, Action<int>? progress = null,
        bool chunked = true)
    {
        var result = new double[sequences.Count];
        using var noGrad = torch.no_grad();
        for (int start = 0; start < sequences.Count; start += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            int n = Math.Min(batchSize, sequences.Count - start);
            var slice = new (int[], int[])[n];
            for (int i = 0; i < n; i++) slice[i] = sequences[start + i];
            using SequenceBatch batch = SequenceBatch.Collate(slice, padId, device);
            double[] sums = Compute(model, batch, withLogits: false, chunked).Sum.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
            Array.Copy(sums, 0, result, start, n);
            progress?.Invoke(start + n);
        }
        return result;
    }
}
