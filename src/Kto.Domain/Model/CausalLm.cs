using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// A causal language model as the trainer, scorer and sampler use it: final hidden states of token ids, and an output
/// head (tied to the embedding or not) applied to any of them. <see cref="GptLmHeadModel"/> and <see cref="DecoderLm"/>
/// are the two kinds. Parameter names are Hugging Face's, so checkpoints and optimizer state map 1:1.
/// </summary>
public abstract class CausalLm : nn.Module<Tensor, Tensor>
{
    /// <summary>Names the module (TorchSharp's module name).</summary>
    protected CausalLm(string name) : base(name)
    {
    }

    /// <summary>The checkpoint directory the weights were loaded from, or null: saving copies its tokenizer files along.</summary>
    public string? SourceDir { get; set; }

    /// <summary>The configuration of the LoRA adapters attached by <see cref="LoraAdapters.Attach"/>, or null.</summary>
    public LoraOptions? Lora { get; set; }

    /// <summary>The dtype the loaded checkpoint stored its weights in (float32 for a new model): saving keeps it.</summary>
    public ScalarType SourceDtype { get; set; } = ScalarType.Float32;

    /// <summary>The model's configuration (each kind also has a typed <c>Config</c>; one name per type, as TorchSharp's
    /// <c>Module.to</c> indexes a module's properties by name).</summary>
    public abstract LmConfig LmConfig { get; }

    /// <summary>The output head's weight, (V, C): the token embedding when tied, else <c>lm_head.weight</c>.</summary>
    protected abstract Tensor HeadWeight { get; }

    /// <summary>The final hidden states (after the last norm).</summary>
    /// <param name="ids">(B, T) int64 token ids in [0, V), T ≤ <see cref="LmConfig.MaxPositions"/>; positions 0 … T−1 (right-padded batches).</param>
    /// <returns>(B, T, C).</returns>
    public abstract Tensor HiddenStates(Tensor ids);

    /// <summary>Logits for every position: (B, T) ids → (B, T, V).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return Logits(HiddenStates(ids)).MoveToOuterDisposeScope();
    }

    /// <summary>The output head: logits of hidden states <paramref name="h"/> (…, C) → (…, V).</summary>
    public Tensor Logits(Tensor h) => nn.functional.linear(h, HeadWeight);

    /// <summary>
    /// log p(target | h) of rows of hidden states, the logits formed a chunk of rows at a time in forward and backward
    /// (<see cref="ChunkedTokenLogProbs"/>): memory one chunk's logits, not (rows × V).
    /// </summary>
    /// <param name="h">(N, C) hidden states.</param>
    /// <param name="targets">(N) int64 next-token ids.</param>
    /// <returns>(N) float32 log-probs, differentiable with respect to <paramref name="h"/> and the head.</returns>
    public Tensor TokenLogProbs(Tensor h, Tensor targets) => ChunkedTokenLogProbs.Compute(h, HeadWeight, targets);

    /// <summary>
    /// The mean over the vocabulary of the logits of <paramref name="h"/> (…, C) → (…), without forming the logits:
    /// mean_v (h · w_v) = h · mean_v w_v.
    /// </summary>
    public Tensor MeanLogit(Tensor h)
    {
        using var scope = NewDisposeScope();
        return h.matmul(HeadWeight.mean([0])).MoveToOuterDisposeScope();
    }
}
