using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// A GPT-2-architecture causal LM (HF <c>GPT2LMHeadModel</c>): token + position embeddings, pre-norm blocks,
/// a final layer norm and an output head tied to the token embedding. Parameter names are Hugging Face's
/// (<c>transformer.h.0.attn.c_attn.weight</c>, …), so <see cref="Checkpoints.ModelCheckpoint"/> maps them 1:1.
/// There is no dropout: like TRL's trainers (<c>disable_dropout=True</c>), training runs without it, which also
/// makes steps deterministic.
/// </summary>
public sealed class GptLmHeadModel : CausalLm
{
    private readonly GptBody _transformer;

    /// <summary>Creates a model with GPT-2's initialisation drawn from <paramref name="generator"/> (or the global RNG).</summary>
    public GptLmHeadModel(GptConfig config, Generator? generator = null) : base(nameof(GptLmHeadModel))
    {
        config.Validate();
        Config = config;
        _transformer = new GptBody(config);
        register_module("transformer", _transformer);
        Initialise(generator);
    }

    /// <summary>The model's size and tokenizer.</summary>
    public GptConfig Config { get; }

    /// <inheritdoc />
    public override LmConfig LmConfig => Config;

    /// <summary>The final hidden states, after ln_f.</summary>
    /// <param name="ids">(B, T) int64 token ids, T ≤ n_positions.</param>
    /// <returns>(B, T, C).</returns>
    public override Tensor HiddenStates(Tensor ids) => _transformer.forward(ids);

    /// <inheritdoc />
    protected override Tensor HeadWeight => _transformer.TokenEmbedding;

    private void Initialise(Generator? generator)
    {
        using var noGrad = torch.no_grad();
        // GPT-2: N(0, 0.02) for weights and embeddings, zero biases, unit layer norms, and residual
        // projections (c_proj) scaled by 1/sqrt(2·n_layer) so the residual stream's variance stays put.
        double residualStd = GptConfig.InitializerRange / Math.Sqrt(2.0 * Config.NLayer);
        using Scalar one = 1.0.ToScalar();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else if (name.Contains(".ln_", StringComparison.Ordinal) || name.Contains("ln_f", StringComparison.Ordinal)) p.fill_(one);
            else if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) p.normal_(0, residualStd, generator);
            else p.normal_(0, GptConfig.InitializerRange, generator);
        }
    }

    private sealed class GptBody : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Embedding _wte;
        private readonly TorchSharp.Modules.Embedding _wpe;
        private readonly TorchSharp.Modules.ModuleList<GptBlock> _h;
        private readonly TorchSharp.Modules.LayerNorm _lnF;

        public GptBody(GptConfig config) : base(nameof(GptBody))
        {
            _wte = nn.Embedding(config.VocabSize, config.NEmbd);
            _wpe = nn.Embedding(config.NPositions, config.NEmbd);
            _h = nn.ModuleList(Enumerable.Range(0, config.NLayer).Select(_ => new GptBlock(config)).ToArray());
            _lnF = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
            register_module("wte", _wte);
            register_module("wpe", _wpe);
            register_module("h", _h);
            register_module("ln_f", _lnF);
        }

        public Tensor TokenEmbedding => _wte.weight!;

        public override Tensor forward(Tensor ids)
        {
            long t = ids.shape[1];
            if (t > _wpe.weight!.shape[0])
                throw new ArgumentException($"sequence of {t} tokens exceeds n_positions = {_wpe.weight.shape[0]}");
            Tensor pos = Scalars.Arange(t, ScalarType.Int64, ids.device);         // (T)
            Tensor x = _wte.forward(ids).Plus(_wpe.forward(pos));                    // (B, T, C)
            foreach (GptBlock block in _h) x = block.forward(x);
            return _lnF.forward(x);
        }
    }
}
