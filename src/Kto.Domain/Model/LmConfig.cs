using TorchSharp;

namespace Kto.Domain.Model;

/// <summary>
/// What every command needs to know of a checkpoint's model before (or without) loading its weights: the family
/// (Hugging Face's <c>model_type</c>), the vocabulary, the longest sequence, the tokenizer it was built with and its
/// special ids. <see cref="GptConfig"/> (gpt2) and <see cref="DecoderConfig"/> (llama, mistral, qwen2, qwen3) are the
/// two kinds; <see cref="Checkpoints.ModelCheckpoint.LoadConfig"/> picks one by <c>config.json</c>'s <c>model_type</c>.
/// </summary>
public abstract record LmConfig
{
    /// <summary>Hugging Face's <c>model_type</c>.</summary>
    public abstract string ModelType { get; init; }

    /// <summary>V: rows of the embedding and of the output head (<c>vocab_size</c>); token ids must lie in [0, V).</summary>
    public abstract int VocabSize { get; init; }

    /// <summary>
    /// The longest sequence the model takes: GPT-2's <c>n_positions</c> (its position embedding ends there), the
    /// Llama family's <c>max_position_embeddings</c> (the context it was trained for).
    /// </summary>
    public abstract int MaxPositions { get; }

    /// <summary>Name of the built-in tokenizer (<c>kto_tokenizer</c>: "gpt2" or "byte") the ids belong to, or null when the checkpoint names none.</summary>
    public abstract string? Tokenizer { get; init; }

    /// <summary>config.json's <c>bos_token_id</c> (the first, if a list), or null.</summary>
    public abstract int? BosTokenId { get; init; }

    /// <summary>config.json's <c>eos_token_id</c> (the first, if a list), or null.</summary>
    public abstract int? EosTokenId { get; init; }

    /// <summary>The name of <see cref="MaxPositions"/> in config.json, for messages.</summary>
    public abstract string MaxPositionsKey { get; }

    /// <summary>This config without what may differ between two checkpoints of one architecture (special-token ids, source text), for comparing.</summary>
    public abstract LmConfig Architecture();

    /// <summary>A new model of this config, initialised as transformers initialises it, drawing from <paramref name="generator"/>.</summary>
    public abstract CausalLm CreateModel(torch.Generator? generator = null);

    /// <summary>
    /// Refuses a <c>max_length</c> the model cannot run (longer than <see cref="MaxPositions"/>, or than a sliding window
    /// this decoder does not implement). <paramref name="path"/> names the checkpoint in the message.
    /// </summary>
    /// <exception cref="InvalidDataException">The length does not fit.</exception>
    public virtual void CheckSequenceLength(int maxLength, string path)
    {
        if (maxLength > MaxPositions)
            throw new InvalidDataException($"{path}: max_length {maxLength} exceeds the model's {MaxPositionsKey} = {MaxPositions}");
    }
}
