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

    /// <summary>The tokenizer of the checkpoint in <paramref name="dir"/> whose config is <paramref name="config"/>: the built-in one its <c>kto_tokenizer</c> names.</summary>
    /// <exception cref="InvalidDataException">The checkpoint names no tokenizer this build has.</exception>
    public static ITextTokenizer ForModel(string dir, Model.LmConfig config)
    {
        if (config.Tokenizer is null)
            throw new InvalidDataException($"{dir}: no tokenizer: config.json has no \"kto_tokenizer\" ({string.Join(" or ", Names)}) and the directory's tokenizer files are not read by this build");
        if (!Names.Contains(config.Tokenizer))
            throw new InvalidDataException($"{Path.Combine(dir, "config.json")}: \"kto_tokenizer\" \"{config.Tokenizer}\" is unknown (known: {string.Join(", ", Names)})");
        return Get(config.Tokenizer);
    }
}
