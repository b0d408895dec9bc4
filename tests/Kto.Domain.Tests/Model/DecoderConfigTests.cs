using System.Text.Json.Nodes;
using Kto.Domain.Model;

namespace Kto.Domain.Tests.Model;

/// <summary>Llama-family config.json files as the Hub ships them, resolved; what the decoder does not do, refused by key.</summary>
public sealed class DecoderConfigTests
{
    private static DecoderConfig Parse(string json) => DecoderConfig.Parse(JsonNode.Parse(json)!.AsObject(), "config.json");

    private static string Refused(string json) => Assert.Throws<InvalidDataException>(() => Parse(json)).Message;

    // Keys and values of meta-llama/Llama-3.2-1B's config.json.
    private const string Llama32 = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
         "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
         "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
         "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256}
        """;

    [Fact]
    public void Llama32ResolvesWithItsLlama3RopeScalingAndTiedHead()
    {
        DecoderConfig c = Parse(Llama32);
        Assert.Equal(("llama", 128256, 2048, 8192, 16, 32, 8, 64), (c.ModelType, c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal((1e-5, 500000.0), (c.RmsNormEps, c.RopeTheta));
        Assert.Equal(new Llama3RopeScaling(32, 1, 4, 8192), c.RopeScaling);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.QkvBias || c.OProjBias || c.MlpBias || c.QkNorm);
        Assert.Equal((128000, 128001), (c.BosTokenId, c.EosTokenId));
        Assert.Null(c.SlidingWindow);
    }

    [Fact]
    public void Qwen2AlwaysHasQkvBiasesQwen3HasHeadNormsAndA128HeadDimByDefault()
    {
        DecoderConfig q2 = Parse("""
            {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
             "num_attention_heads": 14, "num_key_value_heads": 2, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
             "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21, "max_position_embeddings": 32768, "hidden_act": "silu"}
            """);
        Assert.Equal((64, true, false, false, null), (q2.HeadDim, q2.QkvBias, q2.OProjBias, q2.QkNorm, q2.SlidingWindow)); // 896 / 14; no window when not used

        DecoderConfig q3 = Parse("""
            {"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
             "num_attention_heads": 16, "num_key_value_heads": 8, "rope_theta": 1000000, "attention_bias": false, "tie_word_embeddings": true}
            """);
        Assert.Equal((128, false, false, true), (q3.HeadDim, q3.QkvBias, q3.OProjBias, q3.QkNorm)); // 128 although 1024 / 16 = 64
        Assert.Equal(1e-6, q3.RmsNormEps);
    }

    [Fact]
    public void MistralHasAWindowThatOnlyLongerSequencesMeet()
    {
        DecoderConfig m = Parse("""
            {"model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096, "rms_norm_eps": 1e-05, "tie_word_embeddings": false}
            """);
        Assert.Equal((4096, 128, false), (m.SlidingWindow, m.HeadDim, m.TieWordEmbeddings));
        m.CheckSequenceLength(4096, "config.json");
        Assert.Contains("sliding_window 4096 is shorter than max_length 8192", Assert.Throws<InvalidDataException>(() => m.CheckSequenceLength(8192, "config.json")).Message);
        Assert.Null(Parse("""{"model_type": "mistral", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "sliding_window": null}""").SlidingWindow);
    }

    [Fact]
    public void TheLlama3FrequenciesMatchTheHandComputedBands()
    {
        // D = 8, θ = 10000: unscaled [1, 0.1, 0.01, 0.001]; factor 8, low 1, high 4, original 64 → high band kept, one blended, two divided.
        DecoderConfig c = Parse("""
            {"model_type": "llama", "vocab_size": 16, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "rope_theta": 10000, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}}
            """);
        double[] inv = c.InverseFrequencies();
        // blended: wavelen = 2π/0.1; s = (64/wavelen − 1)/(4 − 1); (1 − s)·0.1/8 + s·0.1
        double wavelen = 2 * Math.PI / 0.1, s = (64 / wavelen - 1) / 3, blended = (1 - s) * 0.1 / 8 + s * 0.1;
        Assert.Equal(0.013042256043820465, blended, 15);
        Assert.Equal([1.0, blended, 0.00125, 0.000125], inv.Select(x => Math.Round(x, 15)), new Tolerance());
        // v5 files put θ and the scaling under rope_parameters.
        DecoderConfig v5 = Parse("""
            {"model_type": "llama", "vocab_size": 16, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000, "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}}
            """);
        Assert.Equal(inv, v5.InverseFrequencies());
    }

    private sealed class Tolerance : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= 1e-15 * Math.Max(1, Math.Abs(a));

        public int GetHashCode(double x) => 0;
    }

    [Fact]
    public void WhatTheDecoderDoesNotDoIsRefusedNamingTheKey()
    {
        const string Base = "\"vocab_size\": 8, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2";
        Assert.Contains("model_type \"mixtral\" is not supported (supported: gpt2, llama, mistral, qwen2, qwen3)", Refused($$"""{"model_type": "mixtral", {{Base}}}"""));
        Assert.Contains("\"num_experts\" 60: mixture-of-experts", Refused($$"""{"model_type": "qwen2", "num_experts": 60, {{Base}}}"""));
        Assert.Contains("rope_scaling.rope_type \"yarn\" is not supported", Refused($$"""{"model_type": "llama", "rope_scaling": {"type": "yarn", "factor": 4}, {{Base}}}"""));
        Assert.Contains("rope_scaling.high_freq_factor missing", Refused($$"""{"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "original_max_position_embeddings": 64}, {{Base}}}"""));
        Assert.Contains("hidden_act \"gelu\" is not supported", Refused($$"""{"model_type": "llama", "hidden_act": "gelu", {{Base}}}"""));
        Assert.Contains("partial_rotary_factor 0.5", Refused($$"""{"model_type": "llama", "partial_rotary_factor": 0.5, {{Base}}}"""));
        Assert.Contains("\"quantization_config\"", Refused($$"""{"model_type": "llama", "quantization_config": {"bits": 4}, {{Base}}}"""));
        Assert.Contains("num_key_value_heads 3 does not divide num_attention_heads 2", Refused($$"""{"model_type": "llama", "num_key_value_heads": 3, {{Base}}}"""));
        Assert.Contains("\"hidden_size\" missing", Refused("""{"model_type": "llama", "vocab_size": 8}"""));
        Assert.Contains("\"num_hidden_layers\" must be an integer, found \"two\"", Refused("""{"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": "two", "num_attention_heads": 2}"""));
        Assert.Contains("layer_types entry \"linear_attention\"", Refused($$"""{"model_type": "qwen3", "layer_types": ["full_attention", "linear_attention"], {{Base}}}"""));
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("mistral")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    public void AWrittenConfigReadsBackAsTheSameModel(string type)
    {
        DecoderConfig original = Parse($$"""
            {"model_type": "{{type}}", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5, "rope_theta": 500000, "max_position_embeddings": 512,
             "tie_word_embeddings": {{(type == "qwen2" ? "false" : "true")}}, "bos_token_id": 1, "eos_token_id": [2, 3], "kto_tokenizer": "byte"}
            """) with { SourceJson = null };
        JsonObject written = JsonNode.Parse(original.ToJson("bfloat16"))!.AsObject();
        Assert.Equal("bfloat16", written["torch_dtype"]!.GetValue<string>());
        Assert.Equal(original.ArchitectureName, written["architectures"]![0]!.GetValue<string>());
        Assert.Equal(original, DecoderConfig.Parse(written, "config.json") with { SourceJson = null });

        var scaled = original with { RopeScaling = new Llama3RopeScaling(8, 1, 4, 64) };
        Assert.Equal(scaled, DecoderConfig.Parse(JsonNode.Parse(scaled.ToJson("float32"))!.AsObject(), "config.json") with { SourceJson = null });
    }

    [Fact]
    public void AConfigReadFromAFileIsWrittenBackWithEveryKeyOnlyItsDtypeChanged()
    {
        DecoderConfig c = Parse(Llama32);
        JsonObject written = JsonNode.Parse(c.ToJson("float32"))!.AsObject();
        JsonObject source = JsonNode.Parse(Llama32)!.AsObject();
        Assert.Equal("float32", written["torch_dtype"]!.GetValue<string>());
        source.Remove("torch_dtype");
        written.Remove("torch_dtype");
        Assert.True(JsonNode.DeepEquals(source, written), written.ToJsonString());
    }
}
