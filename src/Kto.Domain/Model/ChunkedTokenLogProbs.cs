using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// log p(target | h) = (h·W)[target] − logsumexp(h·W) for rows of hidden states, without ever holding the logits of all
/// rows: the forward pass and the backward pass each form the (rows, V) logits a chunk of rows at a time (recomputed in
/// backward, as gradient checkpointing does), so peak memory is one chunk's logits however many rows and however large
/// V is (Llama 3: V = 128256). Logits and softmax are in float32.
/// </summary>
/// <remarks>
/// Gradients (g = upstream gradient of each row's log-prob, p = softmax(h·W)): ∂/∂logits = g·(onehot(target) − p), so
/// ∂h = (g·(onehot − p))·W and ∂W = (g·(onehot − p))ᵀ·h, accumulated over chunks.
/// </remarks>
public sealed class ChunkedTokenLogProbs : autograd.SingleTensorFunction<ChunkedTokenLogProbs>
{
    /// <summary>Bytes of float32 logits one chunk may hold (its rows = this / (4·V), at least 1).</summary>
    public const long ChunkBytes = 64L << 20;

    /// <inheritdoc />
    public override string Name => nameof(ChunkedTokenLogProbs);

    /// <summary>Rows per chunk for a vocabulary of <paramref name="vocab"/>.</summary>
    public static long RowsPerChunk(long vocab) => Math.Max(1, ChunkBytes / (4 * vocab));

    /// <summary>The log-probs.</summary>
    /// <param name="hidden">(N, C) hidden states.</param>
    /// <param name="weight">(V, C) output head (the embedding when tied).</param>
    /// <param name="targets">(N) int64 target ids in [0, V).</param>
    /// <param name="rowsPerChunk">Rows per chunk; default <see cref="RowsPerChunk"/> of V.</param>
    /// <returns>(N) float32 log p(target | h).</returns>
    public static Tensor Compute(Tensor hidden, Tensor weight, Tensor targets, long? rowsPerChunk = null) =>
        apply(hidden, weight, targets, rowsPerChunk ?? RowsPerChunk(weight.shape[0]));

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (h, w, targets, rows) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (long)vars[3]);
        long n = h.shape[0];
        ctx.save_data("rows", rows);
        ctx.save_data("weight_grad", w.requires_grad); // a frozen head (LoRA) needs no (V, C) gradient
        Tensor result = empty(n, dtype: ScalarType.Float32, device: h.device);
        Tensor lse = empty(n, dtype: ScalarType.Float32, device: h.device);
        using (no_grad())
        {
            for (long start = 0; start < n; start += rows)
            {
                using var scope = NewDisposeScope();
                long count = Math.Min(rows, n - start);
                Tensor logits = h.narrow(0, start, count).matmul(w.t()).to_type(ScalarType.Float32);   // (c, V)
                Tensor chunkLse = logits.logsumexp(-1);                                                    // (c)
                Tensor picked = logits.gather(-1, targets.narrow(0, start, count).unsqueeze(-1)).squeeze(-1);
                result.narrow(0, start, count).copy_(picked - chunkLse);
                lse.narrow(0, start, count).copy_(chunkLse);
            }
        }
        ctx.save_for_backward([h, w, targets, lse]);
        return result;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        List<Tensor> saved = ctx.get_saved_variables();
        var (h, w, targets, lse) = (saved[0], saved[1], saved[2], saved[3]);
        long n = h.shape[0], rows = (long)ctx.get_data("rows");
        bool weightGrad = (bool)ctx.get_data("weight_grad");
        Tensor gradH = zeros_like(h);
        Tensor? gradW = weightGrad ? zeros(w.shape, dtype: ScalarType.Float32, device: w.device) : null;
        for (long start = 0; start < n; start += rows)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(rows, n - start);
            Tensor hc = h.narrow(0, start, count);
            Tensor logits = hc.matmul(w.t()).to_type(ScalarType.Float32);                              // (c, V)
            Tensor g = grad_output.narrow(0, start, count).to_type(ScalarType.Float32).unsqueeze(-1);   // (c, 1)
            Tensor dLogits = (logits - lse.narrow(0, start, count).unsqueeze(-1)).exp_().mul_(g).neg_(); // −g·p
            dLogits.scatter_add_(-1, targets.narrow(0, start, count).unsqueeze(-1), g);                 // + g·onehot
            gradH.narrow(0, start, count).copy_(dLogits.matmul(w.to_type(ScalarType.Float32)).to_type(h.dtype));
            gradW?.add_(dLogits.t().matmul(hc.to_type(ScalarType.Float32)), Scalars.One);
        }
        return [gradH, gradW is null ? null! : gradW.dtype == w.dtype ? gradW : gradW.to_type(w.dtype), null!, null!];
    }
}
