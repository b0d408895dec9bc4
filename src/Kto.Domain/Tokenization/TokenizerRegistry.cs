namespace Kto.Domain.Tokenization;

/// <summary>Finds a tokenizer by the name a checkpoint records.</summary>
public static class TokenizerRegistry
{
    /// <summary>Names of the tokenizers this build knows.</summary>
    public static IReadOnlyList<string> Names { get; } = [Gpt2Tokenizer.TokenizerName, ByteTokenizer.TokenizerName];

    /// <summary>The tokenizer called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No tokenizer has that name.</exception>
    public static ITextTokenizer Get(string name) => name switch
    {
        Gpt2Tokenizer.TokenizerName => Gpt2Tokenizer.Instance,
        ByteTokenizer.TokenizerName => ByteTokenizer.Instance,
        _ => throw new ArgumentException($"unknown tokenizer \"{name}\"; known: {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>
    /// The tokenizer of the checkpoint in <paramref name="dir"/> whose config is <paramref name="config"/>: its own
    /// tokenizer.json (<see cref="HfTokenizer"/>) when it has one, else the built-in one config.json's <c>kto_tokenizer</c>
    /// names (GPT-2 checkpoints without it: GPT-2's BPE when the vocabulary holds it, else the byte tokenizer).
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint has no tokenizer this build reads, or its files are malformed.</exception>
    public static ITextTokenizer ForModel(string dir, Model.LmConfig config)
    {
        if (HfTokenizer.IsIn(dir)) return HfTokenizer.Load(dir, config.BosTokenId, config.EosTokenId);
        if (config.Tokenizer is null)
            throw new InvalidDataException($"{dir}: no tokenizer: neither {HfTokenizer.TokenizerFile} nor config.json's \"kto_tokenizer\" ({string.Join(" or ", Names)})");
        if (!Names.Contains(config.Tokenizer))
            throw new InvalidDataException($"{Path.Combine(dir, "config.json")}: \"kto_tokenizer\" \"{config.Tokenizer}\" is unknown (known: {string.Join(", ", Names)})");
        return Get(config.Tokenizer);
    }
}
