using System.Text.Json.Nodes;
using Kto.Domain.Model;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>
/// The Llama-family decoder against a double-precision reference written here from transformers' formulas with plain
/// loops (RMSNorm, half-split RoPE with the llama3 frequencies, GQA head h → kv head h/(nH/nKV), causal softmax,
/// SwiGLU, Qwen2 biases, Qwen3 head norms, tied and untied heads), and its Hugging Face parameter names.
/// </summary>
public sealed class DecoderLmTests
{
    private static DecoderConfig Config(string json) => DecoderConfig.Parse(JsonNode.Parse(json)!.AsObject(), "config.json");

    public static TheoryData<string> Families() =>
    [
        // llama: GQA 4 → 2, llama3 rope scaling, untied head
        """{"model_type": "llama", "vocab_size": 23, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8}, "tie_word_embeddings": false}""",
        // qwen2: q/k/v biases, tied head
        """{"model_type": "qwen2", "vocab_size": 19, "hidden_size": 12, "intermediate_size": 20, "num_hidden_layers": 2, "num_attention_heads": 3, "num_key_value_heads": 1, "rope_theta": 1000000, "tie_word_embeddings": true}""",
        // qwen3: per-head q/k norms, head_dim 8 while hidden/heads = 4
        """{"model_type": "qwen3", "vocab_size": 17, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "rope_theta": 10000, "tie_word_embeddings": true}""",
    ];

    [Theory]
    [MemberData(nameof(Families))]
    public void LogitsMatchADoublePrecisionReferenceOfTheFormulas(string json)
    {
        DecoderConfig c = Config(json);
        using var g = new Generator(3);
        using var model = new DecoderLm(c, g);
        using (no_grad())
            foreach (var (_, p) in model.named_parameters()) p.normal_(0.1, 0.3, g); // biases and norm weights too, so each is exercised
        var weights = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.to_type(ScalarType.Float64).data<double>().ToArray());
        long[] ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];

        double[,] expected = Reference(c, weights, ids);
        using Tensor logits = model.forward(tensor(ids).unsqueeze(0));
        float[] actual = logits.data<float>().ToArray();
        double worst = 0, scale = 0;
        for (int t = 0; t < ids.Length; t++)
            for (int v = 0; v < c.VocabSize; v++)
            {
                worst = Math.Max(worst, Math.Abs(actual[t * c.VocabSize + v] - expected[t, v]));
                scale = Math.Max(scale, Math.Abs(expected[t, v]));
            }
        Assert.True(worst <= 1e-5 * Math.Max(1, scale), $"max |float32 − float64| = {worst:E2} over logits up to {scale:F2}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void AHandBuiltTwoShardBf16HubCheckpointGivesTheReferenceLogProbs(string json)
    {
        string dir = Directory.CreateTempSubdirectory("kto-hub-").FullName;
        try
        {
            DecoderConfig c = Config(json);
            using var g = new Generator(8);
            using var source = new DecoderLm(c, g);
            var stored = new Dictionary<string, Tensor>();
            using (no_grad())
                foreach (var (name, p) in source.named_parameters())
                    stored[name] = p.normal_(0.1, 0.3, g).to_type(ScalarType.BFloat16); // what the Hub stores
            var rounded = stored.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float64).data<double>().ToArray());

            // Two shards and the index, written here as the Hub lays them out (not by our checkpoint writer).
            File.WriteAllText(Path.Combine(dir, "config.json"), json.TrimEnd('}') + ", \"torch_dtype\": \"bfloat16\"}");
            string[] names = [.. stored.Keys.Order(StringComparer.Ordinal)];
            var shards = new[] { names[..(names.Length / 2)], names[(names.Length / 2)..] };
            var weightMap = new JsonObject();
            for (int i = 0; i < 2; i++)
            {
                string file = $"model-0000{i + 1}-of-00002.safetensors";
                Checkpoints.Safetensors.Write(Path.Combine(dir, file), shards[i].ToDictionary(n => n, n => stored[n]));
                foreach (string n in shards[i]) weightMap[n] = file;
            }
            long total = stored.Values.Sum(t => t.NumberOfElements * 2);
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
                new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap }.ToJsonString());

            using var model = Checkpoints.ModelCheckpoint.Load(dir);
            int[] prompt = [3, 1, 4, 1], completion = [5, 9, 2, 6];
            using var batch = Kto.Domain.Training.SequenceBatch.Collate([(prompt, completion)], 0, CPU);
            double actual = Kto.Domain.Training.SequenceLogProbs.Compute(model, batch).Sum.to_type(ScalarType.Float64).item<double>();

            long[] ids = [.. prompt.Concat(completion).Select(i => (long)i)];
            double[,] logits = Reference(c, rounded, ids);
            double expected = 0;
            for (int t = prompt.Length - 1; t < ids.Length - 1; t++)
            {
                double max = Enumerable.Range(0, c.VocabSize).Max(v => logits[t, v]);
                double lse = max + Math.Log(Enumerable.Range(0, c.VocabSize).Sum(v => Math.Exp(logits[t, v] - max)));
                expected += logits[t, ids[t + 1]] - lse;
            }
            Assert.True(Math.Abs(actual - expected) <= 1e-4 * Math.Max(1, Math.Abs(expected)), $"log-prob {actual} vs the reference's {expected}");
            foreach (Tensor t in stored.Values) t.Dispose();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ParametersHaveHuggingFaceNamesAndShapes()
    {
        DecoderConfig c = Config("""{"model_type": "qwen3", "vocab_size": 17, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "tie_word_embeddings": false}""");
        using var model = new DecoderLm(c);
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => string.Join("x", p.parameter.shape));
        Assert.Equal(new Dictionary<string, string>
        {
            ["model.embed_tokens.weight"] = "17x8",
            ["model.layers.0.input_layernorm.weight"] = "8",
            ["model.layers.0.self_attn.q_proj.weight"] = "16x8",
            ["model.layers.0.self_attn.k_proj.weight"] = "8x8",
            ["model.layers.0.self_attn.v_proj.weight"] = "8x8",
            ["model.layers.0.self_attn.o_proj.weight"] = "8x16",
            ["model.layers.0.self_attn.q_norm.weight"] = "8",
            ["model.layers.0.self_attn.k_norm.weight"] = "8",
            ["model.layers.0.post_attention_layernorm.weight"] = "8",
            ["model.layers.0.mlp.gate_proj.weight"] = "16x8",
            ["model.layers.0.mlp.up_proj.weight"] = "16x8",
            ["model.layers.0.mlp.down_proj.weight"] = "8x16",
            ["model.norm.weight"] = "8",
            ["lm_head.weight"] = "17x8",
        }, shapes);
    }

    [Fact]
    public void ABf16ShardedHubCheckpointLoadsWithOrWithoutTheModelPrefixAndItsHeadIsChecked()
    {
        string dir = Directory.CreateTempSubdirectory("kto-decoder-").FullName;
        try
        {
            const string Json = """{"model_type": "llama", "vocab_size": 23, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}""";
            File.WriteAllText(Path.Combine(dir, "config.json"), Json);
            using var g = new Generator(4);
            using var model = new DecoderLm(Config(Json), g);
            using (no_grad())
                foreach (var (_, p) in model.named_parameters()) p.copy_(p.to_type(ScalarType.BFloat16)); // what BF16 can hold
            var files = Checkpoints.DecoderCheckpoint.SaveWeights(model, dir, maxShardBytes: 2000, dtype: ScalarType.BFloat16);
            Assert.Contains(files, f => f.EndsWith(Checkpoints.ShardedSafetensors.IndexFile, StringComparison.Ordinal));
            Assert.DoesNotContain(model.named_parameters(), p => p.name == "lm_head.weight"); // tied: not a parameter, not stored

            long[] ids = [1, 2, 3, 4, 5];
            using Tensor expected = model.forward(tensor(ids).unsqueeze(0));
            using (var loaded = Checkpoints.DecoderCheckpoint.Load(dir))
            using (Tensor actual = loaded.forward(tensor(ids).unsqueeze(0)))
                Assert.True(actual.eq(expected).all().item<bool>(), "logits differ after a BF16 sharded round trip");

            // The same tensors without the "model." prefix, in one file with a stale rotary buffer and a stored tied head.
            var flat = model.named_parameters().ToDictionary(p => p.name.StartsWith("model.", StringComparison.Ordinal) ? p.name["model.".Length..] : p.name, p => (Tensor)p.parameter);
            using Tensor invFreq = ones(2);
            flat["layers.0.self_attn.rotary_emb.inv_freq"] = invFreq;
            flat["lm_head.weight"] = flat["embed_tokens.weight"];
            foreach (string f in Directory.GetFiles(dir, "*.safetensors*")) File.Delete(f);
            Checkpoints.Safetensors.Write(Path.Combine(dir, "model.safetensors"), flat);
            using (var loaded = Checkpoints.DecoderCheckpoint.Load(dir))
            using (Tensor actual = loaded.forward(tensor(ids).unsqueeze(0)))
                Assert.True(actual.eq(expected).all().item<bool>(), "logits differ when loaded without the prefix");

            // A tied head that is not the embedding, and an untied config whose head is missing, are refused.
            using Tensor other = flat["embed_tokens.weight"] + 1;
            flat["lm_head.weight"] = other;
            Checkpoints.Safetensors.Write(Path.Combine(dir, "model.safetensors"), flat);
            Assert.Contains("lm_head.weight differs from model.embed_tokens.weight", Assert.Throws<InvalidDataException>(() => Checkpoints.DecoderCheckpoint.Load(dir).Dispose()).Message);
            flat.Remove("lm_head.weight");
            Checkpoints.Safetensors.Write(Path.Combine(dir, "model.safetensors"), flat);
            File.WriteAllText(Path.Combine(dir, "config.json"), Json.Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", StringComparison.Ordinal));
            Assert.Contains("\"lm_head.weight\" missing, and tie_word_embeddings is false", Assert.Throws<InvalidDataException>(() => Checkpoints.DecoderCheckpoint.Load(dir).Dispose()).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ---- the reference: plain loops in double precision ----

    private static double[] Rms(double[] x, double[] w, double eps)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double r = 1 / Math.Sqrt(ms + eps);
        return [.. x.Select((v, i) => v * r * w[i])];
    }

    /// <summary>y = W x + b with W stored [out, in] row-major.</summary>
    private static double[] Linear(Dictionary<string, double[]> p, string name, double[] x)
    {
        double[] w = p[name + ".weight"];
        int inDim = x.Length, outDim = w.Length / inDim;
        p.TryGetValue(name + ".bias", out double[]? b);
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = b?[o] ?? 0;
            for (int i = 0; i < inDim; i++) s += w[o * inDim + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /// <summary>Half-split rotary embedding of one head vector at position <paramref name="pos"/>.</summary>
    private static double[] Rope(double[] u, int pos, double[] inv)
    {
        int half = u.Length / 2;
        var r = new double[u.Length];
        for (int j = 0; j < half; j++)
        {
            double a = pos * inv[j], cos = Math.Cos(a), sin = Math.Sin(a);
            r[j] = u[j] * cos - u[j + half] * sin;
            r[j + half] = u[j + half] * cos + u[j] * sin;
        }
        return r;
    }

    private static double[] Head(double[] all, int head, int d) => all[(head * d)..((head + 1) * d)];

    private static double[,] Reference(DecoderConfig c, Dictionary<string, double[]> p, long[] ids)
    {
        int T = ids.Length, H = c.HiddenSize, D = c.HeadDim, nH = c.NumAttentionHeads, nKV = c.NumKeyValueHeads, rep = nH / nKV;
        double[] inv = c.InverseFrequencies();
        double[] embed = p["model.embed_tokens.weight"];
        var h = new double[T][];
        for (int t = 0; t < T; t++) h[t] = embed[(int)(ids[t] * H)..(int)((ids[t] + 1) * H)];
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            string at = $"model.layers.{layer}.";
            var q = new double[T][][];
            var k = new double[T][][];
            var v = new double[T][][];
            for (int t = 0; t < T; t++)
            {
                double[] x = Rms(h[t], p[at + "input_layernorm.weight"], c.RmsNormEps);
                double[] qa = Linear(p, at + "self_attn.q_proj", x), ka = Linear(p, at + "self_attn.k_proj", x), va = Linear(p, at + "self_attn.v_proj", x);
                q[t] = [.. Enumerable.Range(0, nH).Select(i => Head(qa, i, D)).Select(u => c.QkNorm ? Rms(u, p[at + "self_attn.q_norm.weight"], c.RmsNormEps) : u).Select(u => Rope(u, t, inv))];
                k[t] = [.. Enumerable.Range(0, nKV).Select(i => Head(ka, i, D)).Select(u => c.QkNorm ? Rms(u, p[at + "self_attn.k_norm.weight"], c.RmsNormEps) : u).Select(u => Rope(u, t, inv))];
                v[t] = [.. Enumerable.Range(0, nKV).Select(i => Head(va, i, D))];
            }
            for (int t = 0; t < T; t++)
            {
                var concat = new double[nH * D];
                for (int head = 0; head < nH; head++)
                {
                    int kv = head / rep;
                    var scores = new double[t + 1];
                    for (int s = 0; s <= t; s++) scores[s] = q[t][head].Zip(k[s][kv], (a, b) => a * b).Sum() / Math.Sqrt(D);
                    double max = scores.Max(), z = scores.Sum(x => Math.Exp(x - max));
                    for (int s = 0; s <= t; s++)
                        for (int j = 0; j < D; j++) concat[head * D + j] += Math.Exp(scores[s] - max) / z * v[s][kv][j];
                }
                double[] o = Linear(p, at + "self_attn.o_proj", concat);
                h[t] = [.. h[t].Zip(o, (a, b) => a + b)];
                double[] y = Rms(h[t], p[at + "post_attention_layernorm.weight"], c.RmsNormEps);
                double[] gate = Linear(p, at + "mlp.gate_proj", y), up = Linear(p, at + "mlp.up_proj", y);
                double[] act = [.. gate.Zip(up, (a, b) => a / (1 + Math.Exp(-a)) * b)];
                h[t] = [.. h[t].Zip(Linear(p, at + "mlp.down_proj", act), (a, b) => a + b)];
            }
        }
        double[] output = c.TieWordEmbeddings ? embed : p["lm_head.weight"];
        var logits = new double[T, c.VocabSize];
        for (int t = 0; t < T; t++)
        {
            double[] x = Rms(h[t], p["model.norm.weight"], c.RmsNormEps);
            for (int tok = 0; tok < c.VocabSize; tok++)
            {
                double s = 0;
                for (int i = 0; i < H; i++) s += output[tok * H + i] * x[i];
                logits[t, tok] = s;
            }
        }
        return logits;
    }
}
