using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// RMSNorm as transformers' <c>LlamaRMSNorm</c>: <c>w · (x₃₂ · rsqrt(mean(x₃₂²) + ε)).to(x.dtype)</c>, the mean over the
/// last axis, computed in float32 and cast back before the weight multiply.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    // Named as registered, so Module.to (dtype or device) replaces this field along with the parameter (by reflection: not readonly).
    [TorchSharp.Utils.ComponentName(Name = "weight")]
#pragma warning disable IDE0044 // Module.to assigns it by reflection
    private Parameter _weight;
#pragma warning restore IDE0044
    private readonly double _eps;

    /// <summary>A norm over a last axis of <paramref name="size"/>, weight ones.</summary>
    public RmsNorm(long size, double eps) : base(nameof(RmsNorm))
    {
        _eps = eps;
        _weight = new Parameter(ones(size));
        register_parameter("weight", _weight);
    }

    /// <summary>(…, size) → (…, size).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor x32 = x.to_type(ScalarType.Float32);
        Tensor normed = (x32 * x32.pow(Scalars.Two).mean([-1], keepdim: true).Plus(_eps).rsqrt()).to_type(x.dtype);
        return (_weight * normed).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Grouped-query self-attention of the Llama family (transformers' <c>LlamaAttention</c> / <c>Qwen2Attention</c> /
/// <c>Qwen3Attention</c>): q/k/v projections ([nH·D, H], [nKV·D, H], [nKV·D, H]), Qwen3's per-head RMSNorm of q and k,
/// rotary embeddings (half-split, <c>x·cos + rotate_half(x)·sin</c>), key/value heads repeated so query head h uses
/// kv head h / (nH/nKV), causal softmax(q·kᵀ/√D)·v, then o_proj ([H, nH·D]).
/// </summary>
public sealed class DecoderAttention : nn.Module
{
    private readonly LinearLayer _q, _k, _v, _o;
    private readonly RmsNorm? _qNorm, _kNorm;
    private readonly int _heads, _kvHeads, _headDim;

    /// <summary>Creates the layer of <paramref name="c"/>.</summary>
    public DecoderAttention(DecoderConfig c) : base(nameof(DecoderAttention))
    {
        (_heads, _kvHeads, _headDim) = (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim);
        _q = new LinearLayer(c.HiddenSize, (long)_heads * _headDim, c.QkvBias);
        _k = new LinearLayer(c.HiddenSize, (long)_kvHeads * _headDim, c.QkvBias);
        _v = new LinearLayer(c.HiddenSize, (long)_kvHeads * _headDim, c.QkvBias);
        _o = new LinearLayer((long)_heads * _headDim, c.HiddenSize, c.OProjBias);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module("o_proj", _o);
        if (c.QkNorm)
        {
            _qNorm = new RmsNorm(_headDim, c.RmsNormEps);
            _kNorm = new RmsNorm(_headDim, c.RmsNormEps);
            register_module("q_norm", _qNorm);
            register_module("k_norm", _kNorm);
        }
    }

    /// <summary>(B, T, H) → (B, T, H), given the rotary tables <paramref name="cos"/> and <paramref name="sin"/> (T, D).</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        Tensor Heads(LinearLayer proj, RmsNorm? norm, int n)
        {
            Tensor h = proj.forward(x).view(b, t, n, _headDim);
            if (norm is not null) h = norm.forward(h); // Qwen3: over each head's D, before RoPE
            return h.transpose(1, 2);                  // (B, n, T, D)
        }
        Tensor q = Rotate(Heads(_q, _qNorm, _heads), cos, sin), k = Rotate(Heads(_k, _kNorm, _kvHeads), cos, sin), v = Heads(_v, null, _kvHeads);
        if (_kvHeads != _heads)
        {
            int rep = _heads / _kvHeads;
            k = k.unsqueeze(2).expand(b, _kvHeads, rep, t, _headDim).reshape(b, _heads, t, _headDim);
            v = v.unsqueeze(2).expand(b, _kvHeads, rep, t, _headDim).reshape(b, _heads, t, _headDim);
        }
        // Causal mask only (sequences are right-padded); the default scale is 1/√D of the last axis.
        Tensor y = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        return _o.forward(y.transpose(1, 2).reshape(b, t, (long)_heads * _headDim)).MoveToOuterDisposeScope();
    }

    /// <summary><c>x·cos + rotate_half(x)·sin</c> with <c>rotate_half(x) = cat(−x[…, D/2:], x[…, :D/2])</c>.</summary>
    private Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = _headDim / 2;
        Tensor rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return (x * cos.to_type(x.dtype)).Plus(rotated * sin.to_type(x.dtype));
    }
}

/// <summary>SwiGLU MLP: <c>down_proj(silu(gate_proj(x)) · up_proj(x))</c> ([I, H], [I, H], [H, I]).</summary>
public sealed class DecoderMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer _gate, _up, _down;

    /// <summary>Creates the layer of <paramref name="c"/>.</summary>
    public DecoderMlp(DecoderConfig c) : base(nameof(DecoderMlp))
    {
        _gate = new LinearLayer(c.HiddenSize, c.IntermediateSize, c.MlpBias);
        _up = new LinearLayer(c.HiddenSize, c.IntermediateSize, c.MlpBias);
        _down = new LinearLayer(c.IntermediateSize, c.HiddenSize, c.MlpBias);
        register_module("gate_proj", _gate);
        register_module("up_proj", _up);
        register_module("down_proj", _down);
    }

    /// <summary>(…, H) → (…, H).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _down.forward(nn.functional.silu(_gate.forward(x)) * _up.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm decoder layer: <c>h += attn(input_layernorm(h)); h += mlp(post_attention_layernorm(h))</c>.</summary>
public sealed class DecoderLayer : nn.Module
{
    private readonly RmsNorm _inputNorm, _postNorm;
    private readonly DecoderAttention _attn;
    private readonly DecoderMlp _mlp;

    /// <summary>Creates the layer of <paramref name="c"/>.</summary>
    public DecoderLayer(DecoderConfig c) : base(nameof(DecoderLayer))
    {
        _inputNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        _attn = new DecoderAttention(c);
        _postNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        _mlp = new DecoderMlp(c);
        register_module("input_layernorm", _inputNorm);
        register_module("self_attn", _attn);
        register_module("post_attention_layernorm", _postNorm);
        register_module("mlp", _mlp);
    }

    /// <summary>(B, T, H) → (B, T, H).</summary>
    public Tensor Forward(Tensor h, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        Tensor x = h.Plus(_attn.Forward(_inputNorm.forward(h), cos, sin));
        return x.Plus(_mlp.forward(_postNorm.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A causal LM of the Llama family (<c>LlamaForCausalLM</c>, <c>MistralForCausalLM</c>, <c>Qwen2ForCausalLM</c>,
/// <c>Qwen3ForCausalLM</c>) from a <see cref="DecoderConfig"/>, with Hugging Face's parameter names
/// (<c>model.embed_tokens.weight</c>, <c>model.layers.{i}.self_attn.q_proj.weight</c>, …, <c>model.norm.weight</c>,
/// <c>lm_head.weight</c> unless tied). Float32 parameters; positions 0…T−1 (right-padded batches).
/// </summary>
public sealed class DecoderLm : CausalLm
{
    private readonly DecoderBody _model;
    private readonly Linear? _lmHead;
    private readonly Tensor _invFreq;

    /// <summary>Creates a model with transformers' initialisation (N(0, 0.02) weights and embeddings, zero biases, unit norms).</summary>
    public DecoderLm(DecoderConfig config, Generator? generator = null) : base(nameof(DecoderLm))
    {
        Config = config;
        _model = new DecoderBody(config);
        register_module("model", _model);
        if (!config.TieWordEmbeddings)
        {
            _lmHead = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
            register_module("lm_head", _lmHead);
        }
        _invFreq = tensor(config.InverseFrequencies().Select(f => (float)f).ToArray());
        using var noGrad = no_grad();
        using Scalar one = 1.0.ToScalar();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(one);
            else p.normal_(0, 0.02, generator);
        }
    }

    /// <summary>The configuration.</summary>
    public DecoderConfig Config { get; }

    /// <inheritdoc />
    public override LmConfig LmConfig => Config;

    /// <inheritdoc />
    protected override Tensor HeadWeight => _lmHead?.weight ?? _model.TokenEmbedding;

    /// <summary>The final hidden states, after the last RMSNorm.</summary>
    /// <param name="ids">(B, T) int64 token ids.</param>
    /// <returns>(B, T, H).</returns>
    public override Tensor HiddenStates(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long t = ids.shape[1];
        // freqs[t, j] = t · inv_freq[j] in float32; emb = cat(freqs, freqs) over D.
        Tensor freqs = Scalars.Arange(t, ScalarType.Float32, ids.device).unsqueeze(1) * _invFreq.to(ids.device).unsqueeze(0);
        Tensor emb = cat([freqs, freqs], -1);
        return _model.Forward(ids, emb.cos(), emb.sin()).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _invFreq.Dispose();
        base.Dispose(disposing);
    }

    private sealed class DecoderBody : nn.Module
    {
        private readonly Embedding _embed;
        private readonly ModuleList<DecoderLayer> _layers;
        private readonly RmsNorm _norm;

        public DecoderBody(DecoderConfig c) : base(nameof(DecoderBody))
        {
            _embed = nn.Embedding(c.VocabSize, c.HiddenSize);
            _layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new DecoderLayer(c)).ToArray());
            _norm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
            register_module("embed_tokens", _embed);
            register_module("layers", _layers);
            register_module("norm", _norm);
        }

        public Tensor TokenEmbedding => _embed.weight!;

        public Tensor Forward(Tensor ids, Tensor cos, Tensor sin)
        {
            using var scope = NewDisposeScope();
            Tensor h = _embed.forward(ids);
            foreach (DecoderLayer layer in _layers) h = layer.Forward(h, cos, sin);
            return _norm.forward(h).MoveToOuterDisposeScope();
        }
    }
}
