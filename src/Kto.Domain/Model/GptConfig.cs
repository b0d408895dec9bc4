namespace Kto.Domain.Model;

/// <summary>
/// Size of a GPT-2-architecture causal LM, with Hugging Face's <c>GPT2Config</c> field names so that
/// <c>config.json</c> files move between this project and <c>transformers</c> unchanged.
/// </summary>
/// <param name="VocabSize">HF <c>vocab_size</c>: rows of the (tied) token embedding.</param>
/// <param name="NPositions">HF <c>n_positions</c>: longest sequence the position embedding covers.</param>
/// <param name="NEmbd">HF <c>n_embd</c>: model width C.</param>
/// <param name="NLayer">HF <c>n_layer</c>: transformer blocks.</param>
/// <param name="NHead">HF <c>n_head</c>: attention heads; must divide <paramref name="NEmbd"/>.</param>
/// <param name="LayerNormEpsilon">HF <c>layer_norm_epsilon</c>.</param>
/// <param name="Tokenizer">Our <c>kto_tokenizer</c>: which tokenizer the ids belong to ("gpt2" or "byte").</param>
/// <param name="BosTokenId">HF <c>bos_token_id</c> as the checkpoint states it; null: the tokenizer's (<see cref="SpecialIds"/>).</param>
/// <param name="EosTokenId">HF <c>eos_token_id</c> as the checkpoint states it; null: the tokenizer's.</param>
public sealed record GptConfig(
    int VocabSize,
    int NPositions,
    int NEmbd,
    int NLayer,
    int NHead,
    double LayerNormEpsilon = GptConfig.DefaultLayerNormEpsilon,
    string? Tokenizer = "gpt2",
    int? BosTokenId = null,
    int? EosTokenId = null) : LmConfig
{
    /// <inheritdoc />
    public override string ModelType { get; init; } = "gpt2";

    /// <inheritdoc />
    public override int MaxPositions => NPositions;

    /// <inheritdoc />
    public override string MaxPositionsKey => "n_positions";

    /// <inheritdoc />
    public override GptLmHeadModel CreateModel(TorchSharp.torch.Generator? generator = null) => new(this, generator);

    /// <summary>
    /// The <c>bos_token_id</c> and <c>eos_token_id</c> to write: the checkpoint's own, else those of its tokenizer (never
    /// <c>vocab_size − 1</c>, which is a padding row when the vocabulary is padded, so <c>transformers</c> would not stop at the real EOS).
    /// </summary>
    public (int Bos, int Eos) SpecialIds()
    {
        if (Tokenizer is null || !Tokenization.TokenizerRegistry.Names.Contains(Tokenizer)) return (BosTokenId ?? VocabSize - 1, EosTokenId ?? VocabSize - 1); // synthetic models (benchmarks)
        Tokenization.ITextTokenizer t = Tokenization.TokenizerRegistry.Get(Tokenizer);
        return (BosTokenId ?? t.BosTokenId, EosTokenId ?? t.EosTokenId);
    }

    /// <summary>This config without the special-token ids (for comparing architectures).</summary>
    public override GptConfig Architecture() => this with { BosTokenId = null, EosTokenId = null };

    /// <summary>GPT-2's layer-norm epsilon.</summary>
    public const double DefaultLayerNormEpsilon = 1e-5;

    /// <summary>GPT-2's init standard deviation (HF <c>initializer_range</c>).</summary>
    public const double InitializerRange = 0.02;

    /// <summary>The 124M-parameter GPT-2 ("gpt2" on the Hub).</summary>
    public static GptConfig Gpt2Small => new(50257, 1024, 768, 12, 12);

    /// <summary>Width of one attention head.</summary>
    public int HeadSize => NEmbd / NHead;

    /// <summary>Throws when the sizes cannot make a model.</summary>
    public void Validate()
    {
        if (VocabSize < 2) throw new ArgumentException($"vocab_size must be at least 2, got {VocabSize}");
        if (NPositions < 2) throw new ArgumentException($"n_positions must be at least 2, got {NPositions}");
        if (NLayer < 1) throw new ArgumentException($"n_layer must be at least 1, got {NLayer}");
        if (NHead < 1 || NEmbd < 1 || NEmbd % NHead != 0)
            throw new ArgumentException($"n_embd ({NEmbd}) must be a positive multiple of n_head ({NHead})");
    }
}
