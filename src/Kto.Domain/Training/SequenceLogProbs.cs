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
    public static Result Compute(CausalLm model, SequenceBatch batch, bool withLogits = true)
    {
        Tensor h = model.HiddenStates(batch.Ids);                           // (B, T, C)
        long t = h.shape[1];
        Tensor predicting = h.narrow(1, 0, t - 1);                          // (B, T−1, C): position j predicts token j+1
        Tensor logits = model.Logits(predicting);                           // (B, T−1, V); the last position is never needed
        Tensor targets = batch.Ids.narrow(1, 1, t - 1).unsqueeze(-1);      // (B, T−1, 1)
        Tensor tokenLogps = logits.log_softmax(-1).gather(-1, targets).squeeze(-1); // (B, T−1)
        Tensor sum = (tokenLogps * batch.LabelMask).sum(1);                // (B)
        Tensor logitSum = withLogits
            ? (model.MeanLogit(predicting.detach()).detach() * batch.LabelMask).sum(1)
            : torch.zeros_like(sum);
        return new Result(sum, logitSum, batch.LabelMask.sum(1));
    }

    /// <summary>Summed completion log-probs of many sequences, without gradient, <paramref name="batchSize"/> at a time.</summary>
    public static double[] Score(CausalLm model, IReadOnlyList<(int[] Prompt, int[] Completion)> sequences, int padId, int batchSize, Device device, Action<int>? progress = null)
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
            double[] sums = Compute(model, batch, withLogits: false).Sum.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
            Array.Copy(sums, 0, result, start, n);
            progress?.Invoke(start + n);
        }
        return result;
    }
}
