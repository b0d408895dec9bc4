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
}
