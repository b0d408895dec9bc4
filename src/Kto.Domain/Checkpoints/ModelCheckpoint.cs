using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Checkpoints;

/// <summary>
/// A model checkpoint directory in Hugging Face's layout: <c>config.json</c> and <c>model.safetensors</c>, or shards
/// listed by <c>model.safetensors.index.json</c> (<see cref="ShardedSafetensors"/>; HF tensor names). The model is
/// chosen by config.json's <c>model_type</c>: gpt2 (GPT2Config fields plus our <c>kto_tokenizer</c>; the head is tied
/// to <c>transformer.wte.weight</c> and not stored; the <c>transformer.</c> prefix optional on load) or a Llama-family
/// decoder (<see cref="DecoderCheckpoint"/>). Weights stored in F32, BF16 or F16 load shard by shard into the model's
/// float32 parameters.
/// </summary>
public static class ModelCheckpoint
{
    /// <summary>File name of the config.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>File name of the weights.</summary>
    public const string WeightsFile = "model.safetensors";

    private const string Prefix = "transformer.";

    /// <summary>
    /// Writes config.json and the weights into <paramref name="dir"/> (each file atomically): <c>model.safetensors</c>,
    /// or shards and their index when the weights exceed <paramref name="maxShardBytes"/> (transformers' default 5 GB),
    /// stored in <paramref name="dtype"/> (float32, bfloat16 or float16; config.json's <c>torch_dtype</c> says which;
    /// default: the dtype the model was loaded from, <see cref="CausalLm.SourceDtype"/>). The tokenizer files of the
    /// checkpoint the model was loaded from are copied along.
    /// </summary>
    public static void Save(CausalLm model, string dir, long maxShardBytes = ShardedSafetensors.DefaultMaxShardBytes, ScalarType? dtype = null)
    {
        Directory.CreateDirectory(dir);
        ScalarType stored = dtype ?? model.SourceDtype;
        string torchDtype = TorchDtypeName(stored);
        string json = model.LmConfig switch
        {
            GptConfig gpt => ConfigToJson(gpt, torchDtype),
            DecoderConfig decoder => decoder.ToJson(torchDtype),
            var other => throw new NotSupportedException($"no config.json writer for model_type \"{other.ModelType}\""),
        };
        AtomicFile.WriteText(Path.Combine(dir, ConfigFile), json);
        // The base model only: LoRA adapters are saved in PEFT's format beside it (LoraAdapters.Save), or merged first.
        ShardedSafetensors.Save(dir, [.. model.named_parameters().Where(p => !LoraAdapters.IsLoraParameter(p.name)).Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter))], maxShardBytes,
            stored == ScalarType.Float32 ? null : stored);
        CopyTokenizerFiles(model.SourceDir, dir);
    }

    /// <summary>Copies the tokenizer files of checkpoint <paramref name="from"/> (tokenizer.json, tokenizer_config.json, chat template, generation config, vocab/merges) into <paramref name="to"/>, each atomically.</summary>
    public static void CopyTokenizerFiles(string? from, string to)
    {
        if (from is null || Path.GetFullPath(from) == Path.GetFullPath(to)) return;
        foreach (string name in Tokenization.HfTokenizer.Files)
        {
            string source = Path.Combine(from, name);
            if (File.Exists(source)) AtomicFile.Write(Path.Combine(to, name), s => { using var f = File.OpenRead(source); f.CopyTo(s); });
        }
    }

    /// <summary>
    /// Reads config.json of the checkpoint at <paramref name="dir"/>: a <see cref="GptConfig"/> for <c>model_type</c>
    /// gpt2 (or none, as this tool's first checkpoints), a <see cref="DecoderConfig"/> for llama, mistral, qwen2 and qwen3.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no config.json.</exception>
    /// <exception cref="InvalidDataException">The file is malformed or describes a model this tool does not run (the key is named).</exception>
    public static LmConfig LoadConfig(string dir)
    {
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: not a model checkpoint (no {ConfigFile})", path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: malformed JSON: {e.Message}", e);
        }
        JsonNode? type = root["model_type"];
        if (type is null || (type is JsonValue v && v.TryGetValue(out string? name) && name == "gpt2")) return ParseGpt(root, path);
        return DecoderConfig.Parse(root, path);
    }

    private static GptConfig ParseGpt(JsonObject root, string path)
    {
        int Int(string key) => root[key]?.GetValue<int>() ?? throw new InvalidDataException($"{path}: \"{key}\" missing");
        int? nInner = root["n_inner"]?.GetValue<int?>();
        if (nInner is int inner && inner != 4 * Int("n_embd"))
            throw new InvalidDataException($"{path}: n_inner {inner} is not supported (this model uses 4·n_embd)");
        int vocab = Int("vocab_size");
        string tokenizer = root["kto_tokenizer"]?.GetValue<string>() ?? (vocab >= Tokenization.Gpt2Tokenizer.Eos + 1 ? "gpt2" : "byte");
        int? bos = SpecialId(root, "bos_token_id", path), eos = SpecialId(root, "eos_token_id", path);
        var (defaultBos, defaultEos) = new GptConfig(vocab, 1, 1, 1, 1, Tokenizer: tokenizer).SpecialIds();
        if (root["kto_tokenizer"] is not null && defaultEos != vocab - 1)
        {
            // Checkpoints this tool wrote before the ids came from the tokenizer state vocab_size − 1 (a padding row): not the checkpoint's own choice.
            if (bos == vocab - 1) bos = null;
            if (eos == vocab - 1) eos = null;
        }
        // The tokenizer's own ids are kept as "the tokenizer's" (null), so a saved and reloaded config equals the original.
        if (bos == defaultBos) bos = null;
        if (eos == defaultEos) eos = null;
        return new GptConfig(vocab, Int("n_positions"), Int("n_embd"), Int("n_layer"), Int("n_head"),
            root["layer_norm_epsilon"]?.GetValue<double>() ?? GptConfig.DefaultLayerNormEpsilon, tokenizer, bos, eos);
    }

    /// <summary>A special-token id of config.json: an integer, or the first of a list (HF allows several EOS ids); null if absent or an empty list.</summary>
    /// <exception cref="InvalidDataException">The value is neither.</exception>
    internal static int? SpecialId(JsonNode root, string key, string path) => root[key] switch
    {
        null or JsonArray { Count: 0 } => null,
        JsonArray list when list[0] is JsonValue first && first.TryGetValue(out int id) => id,
        JsonValue v when v.TryGetValue(out int id) => id,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be an integer or a list of integers, found {other.ToJsonString()}"),
    };

    /// <summary>Loads the model of the checkpoint at <paramref name="dir"/> (float32 weights, whatever the stored dtype) onto <paramref name="device"/>.</summary>
    /// <exception cref="InvalidDataException">The config or the weights do not make a model (see <see cref="LoadConfig"/> and <see cref="LoadWeights"/>).</exception>
    public static CausalLm Load(string dir, Device? device = null)
    {
        CausalLm model = LoadConfig(dir).CreateModel();
        try
        {
            ShardedSafetensors.LoadReport report = LoadWeights(model, dir);
            model.SourceDir = dir;
            model.SourceDtype = WeightDtype(report);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        if (device is not null) model.to(device);
        return model;
    }

    /// <summary>
    /// Copies the weights of the checkpoint in <paramref name="dir"/> (single file or shards) into
    /// <paramref name="model"/>, checking names and shapes; each stored tensor is read once, straight into its parameter.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing or of another shape, a file is malformed, or a stored
    /// <c>lm_head.weight</c> differs from the embedding this model ties it to.</exception>
    /// <returns>What was read: each tensor's stored dtype.</returns>
    public static ShardedSafetensors.LoadReport LoadWeights(CausalLm model, string dir)
    {
        if (model is DecoderLm decoder) return DecoderCheckpoint.LoadWeights(decoder, dir);
        var parameters = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        Tensor wte = parameters.Single(p => p.name == Prefix + "wte.weight").Item2;
        return ShardedSafetensors.LoadParameters(dir, parameters, Prefix, (Prefix + "wte.weight", wte)); // Hub files may omit the prefix
    }

    /// <summary>The floating dtype most of a checkpoint's weights were stored in (float32 if none).</summary>
    public static ScalarType WeightDtype(ShardedSafetensors.LoadReport report) =>
        report.StoredDtypes.Values.Where(d => d is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16)
            .GroupBy(d => d).OrderByDescending(g => g.Count()).Select(g => g.Key).DefaultIfEmpty(ScalarType.Float32).First();

    /// <summary>transformers' <c>torch_dtype</c> name of <paramref name="dtype"/>.</summary>
    /// <exception cref="ArgumentException">Not a weight dtype checkpoints are stored in.</exception>
    public static string TorchDtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => throw new ArgumentException($"weights are stored as float32, bfloat16 or float16, not {dtype}", nameof(dtype)),
    };

    /// <summary>config.json text in Hugging Face's GPT2Config form, for weights stored in <paramref name="torchDtype"/>.</summary>
    public static string ConfigToJson(GptConfig c, string torchDtype = "float32")
    {
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["model_type"] = "gpt2",
            ["vocab_size"] = c.VocabSize,
            ["n_positions"] = c.NPositions,
            ["n_ctx"] = c.NPositions,
            ["n_embd"] = c.NEmbd,
            ["n_layer"] = c.NLayer,
            ["n_head"] = c.NHead,
            ["n_inner"] = null,
            ["activation_function"] = "gelu_new",
            ["layer_norm_epsilon"] = c.LayerNormEpsilon,
            ["initializer_range"] = GptConfig.InitializerRange,
            ["resid_pdrop"] = 0.0,
            ["embd_pdrop"] = 0.0,
            ["attn_pdrop"] = 0.0,
            ["scale_attn_weights"] = true,
            ["tie_word_embeddings"] = true,
            ["bos_token_id"] = c.SpecialIds().Bos,
            ["eos_token_id"] = c.SpecialIds().Eos,
            ["torch_dtype"] = torchDtype,
            ["kto_tokenizer"] = c.Tokenizer,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
