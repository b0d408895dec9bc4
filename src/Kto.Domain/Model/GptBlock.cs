using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>Causal multi-head self-attention (HF <c>GPT2Attention</c>: fused c_attn, then c_proj).</summary>
public sealed class GptAttention : nn.Module<Tensor, Tensor>
{
    private readonly Conv1D _cAttn;
    private readonly Conv1D _cProj;
    private readonly int _nHead;

    /// <summary>Creates the layer for <paramref name="config"/>.</summary>
    public GptAttention(GptConfig config) : base(nameof(GptAttention))
    {
        _nHead = config.NHead;
        _cAttn = new Conv1D(config.NEmbd, 3L * config.NEmbd);
        _cProj = new Conv1D(config.NEmbd, config.NEmbd);
        register_module("c_attn", _cAttn);
        register_module("c_proj", _cProj);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1], c = x.shape[2];
        Tensor[] qkv = _cAttn.forward(x).split(c, 2);                     // 3 × (B, T, C)
        Tensor Heads(Tensor z) => z.view(b, t, _nHead, c / _nHead).transpose(1, 2); // (B, nh, T, hs)
        // Causal mask only: sequences are right-padded, so real tokens never see padding.
        Tensor y = nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), is_casual: true);
        return _cProj.forward(y.transpose(1, 2).contiguous().view(b, t, c));   // (B, T, C)
    }
}

/// <summary>The feed-forward part of a block (HF <c>GPT2MLP</c>: c_fc, gelu_new, c_proj).</summary>
public sealed class GptMlp : nn.Module<Tensor, Tensor>
{
    private readonly Conv1D _cFc;
    private readonly Conv1D _cProj;

    /// <summary>Creates the layer for <paramref name="config"/> (inner width 4C, as GPT-2).</summary>
    public GptMlp(GptConfig config) : base(nameof(GptMlp))
    {
        _cFc = new Conv1D(config.NEmbd, 4L * config.NEmbd);
        _cProj = new Conv1D(4L * config.NEmbd, config.NEmbd);
        register_module("c_fc", _cFc);
        register_module("c_proj", _cProj);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
        // gelu_new is the tanh approximation of GELU.
        => _cProj.forward(nn.functional.gelu(_cFc.forward(x), TorchSharp.Modules.GELU.Approximate.tanh));
}

/// <summary>One pre-norm transformer block (HF <c>GPT2Block</c>).</summary>
public sealed class GptBlock : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.LayerNorm _ln1;
    private readonly GptAttention _attn;
    private readonly TorchSharp.Modules.LayerNorm _ln2;
    private readonly GptMlp _mlp;

    /// <summary>Creates the block for <paramref name="config"/>.</summary>
    public GptBlock(GptConfig config) : base(nameof(GptBlock))
    {
        _ln1 = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
        _attn = new GptAttention(config);
        _ln2 = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon);
        _mlp = new GptMlp(config);
        register_module("ln_1", _ln1);
        register_module("attn", _attn);
        register_module("ln_2", _ln2);
        register_module("mlp", _mlp);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        x = x.Plus(_attn.forward(_ln1.forward(x)));
        return x.Plus(_mlp.forward(_ln2.forward(x)));
    }
}
