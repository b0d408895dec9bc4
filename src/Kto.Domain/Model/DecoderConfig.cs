using System.Globalization;
using System.Text.Json.Nodes;

namespace Kto.Domain.Model;

/// <summary>
/// The llama3 rope scaling of Hugging Face's <c>_compute_llama3_parameters</c> (<c>rope_scaling</c> or, in transformers
/// v5 files, <c>rope_parameters</c>, with <c>rope_type</c> "llama3").
/// </summary>
/// <param name="Factor"><c>factor</c>: low frequencies are divided by it.</param>
/// <param name="LowFreqFactor"><c>low_freq_factor</c>.</param>
/// <param name="HighFreqFactor"><c>high_freq_factor</c>.</param>
/// <param name="OriginalMaxPositionEmbeddings"><c>original_max_position_embeddings</c>.</param>
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, double OriginalMaxPositionEmbeddings);

/// <summary>
/// A Llama-family decoder as its <c>config.json</c> describes it (<c>model_type</c> llama, mistral, qwen2 or qwen3),
/// resolved to what the math needs: one config-driven decoder covers the four (RMSNorm, RoPE, grouped-query attention,
/// SwiGLU), the families differing only in the flags here. Defaults for absent keys are those of the transformers
/// config classes (<c>LlamaConfig</c>, <c>MistralConfig</c>, <c>Qwen2Config</c>, <c>Qwen3Config</c>); the sizes must be
/// given. What the decoder does not implement is refused by <see cref="Parse"/> with the key named.
/// </summary>
/// <param name="ModelType">llama, mistral, qwen2 or qwen3.</param>
/// <param name="VocabSize">V: rows of the embedding and of the output head.</param>
/// <param name="HiddenSize">H.</param>
/// <param name="IntermediateSize">I: width of the SwiGLU MLP.</param>
/// <param name="NumHiddenLayers">L.</param>
/// <param name="NumAttentionHeads">nH: query heads.</param>
/// <param name="NumKeyValueHeads">nKV: key/value heads (query head h uses kv head h / (nH / nKV)).</param>
/// <param name="HeadDim">D: width of one head (q_proj is [nH·D, H], o_proj [H, nH·D]).</param>
/// <param name="RmsNormEps">ε of every RMSNorm.</param>
/// <param name="RopeTheta">θ of the rotary frequencies 1/θ^(2j/D).</param>
/// <param name="RopeScaling">llama3 scaling of those frequencies, or null.</param>
/// <param name="QkvBias">q/k/v projections have biases (qwen2 always; llama and qwen3 with <c>attention_bias</c>).</param>
/// <param name="OProjBias">o_proj has a bias (llama and qwen3 with <c>attention_bias</c>).</param>
/// <param name="MlpBias">gate/up/down projections have biases (llama with <c>mlp_bias</c>).</param>
/// <param name="QkNorm">Per-head RMSNorm of q and k before RoPE (qwen3).</param>
/// <param name="TieWordEmbeddings">The output head is the embedding (no <c>lm_head.weight</c> stored).</param>
/// <param name="MaxPositionEmbeddings">Longest sequence the model was trained for.</param>
/// <param name="SlidingWindow">Keys a query sees when sliding-window attention is on, else null.</param>
/// <param name="BosTokenId"><c>bos_token_id</c> (the first, if a list), or null.</param>
/// <param name="EosTokenId"><c>eos_token_id</c> (the first, if a list), or null.</param>
public sealed record DecoderConfig(
    string ModelType, int VocabSize, int HiddenSize, int IntermediateSize, int NumHiddenLayers, int NumAttentionHeads, int NumKeyValueHeads,
    int HeadDim, double RmsNormEps, double RopeTheta, Llama3RopeScaling? RopeScaling, bool QkvBias, bool OProjBias, bool MlpBias, bool QkNorm,
    bool TieWordEmbeddings, int MaxPositionEmbeddings, int? SlidingWindow, int? BosTokenId, int? EosTokenId) : LmConfig
{
    /// <summary>Our <c>kto_tokenizer</c> key: the built-in tokenizer of a model made by <c>kto model init</c>, else null (the checkpoint's own tokenizer files).</summary>
    public override string? Tokenizer { get; init; }

    /// <summary>The config.json text this config was read from, or null: saving keeps every key of it (unknown ones too).</summary>
    public string? SourceJson { get; init; }

    /// <inheritdoc />
    public override int MaxPositions => MaxPositionEmbeddings;

    /// <inheritdoc />
    public override string MaxPositionsKey => "max_position_embeddings";

    /// <inheritdoc />
    public override DecoderConfig Architecture() => this with { BosTokenId = null, EosTokenId = null, SourceJson = null };

    /// <inheritdoc />
    public override DecoderLm CreateModel(TorchSharp.torch.Generator? generator = null) => new(this, generator);

    /// <summary>Hugging Face's class name of this family's causal LM (config.json's <c>architectures</c>).</summary>
    public string ArchitectureName => ModelType switch
    {
        "llama" => "LlamaForCausalLM",
        "mistral" => "MistralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        _ => "Qwen3ForCausalLM",
    };

    /// <summary>
    /// config.json text for weights stored in <paramref name="torchDtype"/> ("float32", "bfloat16", "float16"): the source
    /// file with its <c>torch_dtype</c> replaced when there is one, else every key transformers needs to rebuild this model.
    /// </summary>
    public string ToJson(string torchDtype)
    {
        var options = new System.Text.Json.JsonSerializerOptions { WriteIndented = true };
        if (SourceJson is not null && JsonNode.Parse(SourceJson) is JsonObject source)
        {
            source["torch_dtype"] = torchDtype;
            if (source.ContainsKey("dtype")) source["dtype"] = torchDtype; // transformers v5's name
            return source.ToJsonString(options);
        }
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray(ArchitectureName),
            ["model_type"] = ModelType,
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["hidden_act"] = "silu",
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["rope_scaling"] = RopeScaling is { } r
                ? new JsonObject
                {
                    ["rope_type"] = "llama3",
                    ["factor"] = r.Factor,
                    ["low_freq_factor"] = r.LowFreqFactor,
                    ["high_freq_factor"] = r.HighFreqFactor,
                    ["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings,
                }
                : null,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["initializer_range"] = 0.02,
            ["attention_dropout"] = 0.0,
            ["use_cache"] = true,
            ["torch_dtype"] = torchDtype,
        };
        if (ModelType is "llama" or "qwen3") root["attention_bias"] = OProjBias;
        if (ModelType == "llama") root["mlp_bias"] = MlpBias;
        if (ModelType == "mistral") root["sliding_window"] = SlidingWindow;
        if (ModelType is "qwen2" or "qwen3")
        {
            root["use_sliding_window"] = SlidingWindow is not null;
            root["sliding_window"] = SlidingWindow;
        }
        if (BosTokenId is int bos) root["bos_token_id"] = bos;
        if (EosTokenId is int eos) root["eos_token_id"] = eos;
        if (Tokenizer is not null) root["kto_tokenizer"] = Tokenizer;
        return root.ToJsonString(options);
    }

    /// <summary>The <c>model_type</c> values this decoder implements.</summary>
    public static IReadOnlyList<string> ModelTypes { get; } = ["llama", "mistral", "qwen2", "qwen3"];

    private static readonly string[] MoeKeys =
        ["num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size", "n_routed_experts", "decoder_sparse_step"];

    /// <summary>
    /// Reads a config.json object. <paramref name="path"/> names the file in errors.
    /// </summary>
    /// <exception cref="InvalidDataException">A size is missing, a value has the wrong type, or the config asks for something
    /// this decoder does not do (mixture of experts, a rope type other than none and llama3, an activation other than
    /// silu, partial rotary embeddings, quantized weights, soft-capping, heads that do not group): the message names the key.</exception>
    public static DecoderConfig Parse(JsonObject root, string path)
    {
        string type = Str(root, "model_type", path) ?? throw new InvalidDataException($"{path}: \"model_type\" missing");
        if (!ModelTypes.Contains(type))
            throw new InvalidDataException($"{path}: model_type \"{type}\" is not supported (supported: gpt2, {string.Join(", ", ModelTypes)})");

        foreach (string key in MoeKeys)
            if (root[key] is JsonNode v && !(v is JsonValue value && value.TryGetValue(out double d) && d == 0))
                throw new InvalidDataException($"{path}: \"{key}\" {v.ToJsonString()}: mixture-of-experts models are not supported");
        if (root["quantization_config"] is not null) throw new InvalidDataException($"{path}: \"quantization_config\": quantized checkpoints are not supported (F32, BF16 and F16 weights are)");
        foreach (string key in new[] { "attn_logit_softcapping", "final_logit_softcapping" })
            if (root[key] is not null) throw new InvalidDataException($"{path}: \"{key}\" is not supported");
        string act = Str(root, "hidden_act", path) ?? "silu";
        if (act is not ("silu" or "swish")) throw new InvalidDataException($"{path}: hidden_act \"{act}\" is not supported (expected \"silu\")");
        if (Num(root, "partial_rotary_factor", path) is double partial && partial != 1)
            throw new InvalidDataException($"{path}: partial_rotary_factor {partial.ToString(CultureInfo.InvariantCulture)} is not supported (rotary embeddings over the whole head only)");
        if (root["layer_types"] is JsonArray layerTypes)
            foreach (JsonNode? t in layerTypes)
                if (t?.GetValue<string>() is not ("full_attention" or "sliding_attention"))
                    throw new InvalidDataException($"{path}: layer_types entry {t?.ToJsonString() ?? "null"} is not supported (full_attention or sliding_attention)");

        int vocab = Required(root, "vocab_size", path), hidden = Required(root, "hidden_size", path), inner = Required(root, "intermediate_size", path);
        int layers = Required(root, "num_hidden_layers", path), heads = Required(root, "num_attention_heads", path);
        int kvHeads = root.ContainsKey("num_key_value_heads") ? Int(root, "num_key_value_heads", path) ?? heads : type == "mistral" ? 8 : type is "qwen2" or "qwen3" ? 32 : heads;
        if (kvHeads < 1 || heads % kvHeads != 0)
            throw new InvalidDataException($"{path}: num_key_value_heads {kvHeads} does not divide num_attention_heads {heads}");
        int headDim = Int(root, "head_dim", path) ?? (type == "qwen3" && !root.ContainsKey("head_dim") ? 128 : hidden / heads);
        if (headDim < 2 || headDim % 2 != 0) throw new InvalidDataException($"{path}: head_dim {headDim} must be even and at least 2 (rotary embeddings pair its halves)");

        JsonObject? parameters = root["rope_parameters"] as JsonObject;
        JsonObject? scaling = root["rope_scaling"] as JsonObject ?? parameters;
        double theta = (parameters is null ? null : Num(parameters, "rope_theta", path)) ?? Num(root, "rope_theta", path) ?? 10000.0;
        string ropeKey = root["rope_scaling"] is JsonObject ? "rope_scaling" : "rope_parameters";
        string? ropeType = scaling is null ? null : Str(scaling, "rope_type", path) ?? Str(scaling, "type", path);
        Llama3RopeScaling? rope = ropeType switch
        {
            null or "default" => null,
            "llama3" => new Llama3RopeScaling(
                Num(scaling!, "factor", path) ?? throw Missing(path, ropeKey, "factor"),
                Num(scaling!, "low_freq_factor", path) ?? throw Missing(path, ropeKey, "low_freq_factor"),
                Num(scaling!, "high_freq_factor", path) ?? throw Missing(path, ropeKey, "high_freq_factor"),
                Num(scaling!, "original_max_position_embeddings", path) ?? throw Missing(path, ropeKey, "original_max_position_embeddings")),
            _ => throw new InvalidDataException($"{path}: {ropeKey}.rope_type \"{ropeType}\" is not supported (none, \"default\" or \"llama3\")"),
        };
        if (rope is { } r && (r.Factor <= 0 || r.HighFreqFactor <= r.LowFreqFactor || r.OriginalMaxPositionEmbeddings <= 0))
            throw new InvalidDataException($"{path}: {ropeKey}: llama3 needs factor > 0, high_freq_factor > low_freq_factor and original_max_position_embeddings > 0");

        bool attentionBias = Bool(root, "attention_bias", path) ?? false;
        bool mlpBias = Bool(root, "mlp_bias", path) ?? false;
        if (mlpBias && type != "llama") throw new InvalidDataException($"{path}: mlp_bias is not supported for model_type \"{type}\"");
        int? window = type switch
        {
            "mistral" => root.ContainsKey("sliding_window") ? Int(root, "sliding_window", path) : 4096,
            "qwen2" or "qwen3" when Bool(root, "use_sliding_window", path) == true => Int(root, "sliding_window", path) ?? 4096,
            _ => null,
        };
        int maxPositions = Int(root, "max_position_embeddings", path) ?? type switch { "llama" => 2048, "mistral" => 131072, _ => 32768 };

        return new DecoderConfig(type, vocab, hidden, inner, layers, heads, kvHeads, headDim,
            Num(root, "rms_norm_eps", path) ?? 1e-6, theta, rope,
            QkvBias: type == "qwen2" || (type is "llama" or "qwen3" && attentionBias),
            OProjBias: type is "llama" or "qwen3" && attentionBias,
            MlpBias: mlpBias, QkNorm: type == "qwen3",
            TieWordEmbeddings: Bool(root, "tie_word_embeddings", path) ?? false,
            maxPositions, window, Checkpoints.ModelCheckpoint.SpecialId(root, "bos_token_id", path), Checkpoints.ModelCheckpoint.SpecialId(root, "eos_token_id", path))
        {
            Tokenizer = Str(root, "kto_tokenizer", path),
            SourceJson = root.ToJsonString(),
        };
    }

    /// <summary>
    /// The rotary inverse frequencies <c>inv_freq[j] = 1/θ^(2j/D)</c>, j = 0 … D/2−1, with the llama3 scaling applied
    /// when configured (transformers' <c>_compute_llama3_parameters</c>): wavelengths longer than
    /// <c>original/low_freq_factor</c> are divided by <c>factor</c>, those shorter than <c>original/high_freq_factor</c>
    /// kept, those between blended with <c>s = (original/wavelen − low)/(high − low)</c>:
    /// <c>(1 − s)·inv/factor + s·inv</c>. In double precision.
    /// </summary>
    public double[] InverseFrequencies()
    {
        var inv = new double[HeadDim / 2];
        for (int j = 0; j < inv.Length; j++) inv[j] = 1.0 / Math.Pow(RopeTheta, 2.0 * j / HeadDim);
        if (RopeScaling is not { } s) return inv;
        double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor, highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (int j = 0; j < inv.Length; j++)
        {
            double wavelen = 2 * Math.PI / inv[j];
            if (wavelen > lowWavelen) inv[j] /= s.Factor;
            else if (wavelen >= highWavelen)
            {
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                inv[j] = (1 - smooth) * inv[j] / s.Factor + smooth * inv[j];
            }
        }
        return inv;
    }

    /// <summary>Refuses sequences the sliding window would cut (with sequences no longer than the window it changes nothing).</summary>
    /// <exception cref="InvalidDataException">The window is shorter than <paramref name="maxLength"/>.</exception>
    public override void CheckSequenceLength(int maxLength, string path)
    {
        base.CheckSequenceLength(maxLength, path);
        if (SlidingWindow is int w && w < maxLength)
            throw new InvalidDataException($"{path}: sliding_window {w} is shorter than max_length {maxLength}: sliding-window attention is not supported; use max_length ≤ {w}");
    }

    private static InvalidDataException Missing(string path, string obj, string key) => new($"{path}: {obj}.{key} missing (rope_type \"llama3\" needs it)");

    private static int Required(JsonObject root, string key, string path) =>
        Int(root, key, path) is int v && v > 0 ? v : throw new InvalidDataException($"{path}: \"{key}\" missing or not a positive integer");

    private static int? Int(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out int i) => i,
        JsonValue v when v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be an integer, found {other.ToJsonString()}"),
    };

    private static double? Num(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be a number, found {other.ToJsonString()}"),
    };

    private static bool? Bool(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be true or false, found {other.ToJsonString()}"),
    };

    private static string? Str(JsonObject o, string key, string path) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be a string, found {other.ToJsonString()}"),
    };
}
