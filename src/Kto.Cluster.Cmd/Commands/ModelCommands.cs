using System.CommandLine;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto model init</c>: a freshly initialised checkpoint of a chosen architecture and size.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "checkpoint directory to write", Required = true };
        var arch = new Option<string>("--arch") { Description = "gpt2, llama, mistral, qwen2 or qwen3 (config.json's model_type)", DefaultValueFactory = _ => "gpt2" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "byte, gpt2, or a directory with a Hugging Face tokenizer.json (its files are copied into the checkpoint)", DefaultValueFactory = _ => ByteTokenizer.TokenizerName };
        var vocab = new Option<int?>("--vocab") { Description = "vocab_size (default: the tokenizer's; larger pads the embedding, as Qwen's checkpoints do)" };
        var dtype = new Option<string>("--dtype") { Description = "fp32, bf16 or fp16: how the weights are stored (config.json's torch_dtype)", DefaultValueFactory = _ => "fp32" };
        var shardMb = new Option<long?>("--max-shard-mb") { Description = "split the weights into shards of at most this many MB, with model.safetensors.index.json (default 5000, as transformers)" };
        var layers = new Option<int>("--layers") { Description = "n_layer / num_hidden_layers", DefaultValueFactory = _ => 2 };
        var heads = new Option<int>("--heads") { Description = "n_head / num_attention_heads", DefaultValueFactory = _ => 2 };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "num_key_value_heads (Llama family; default: --heads)" };
        var width = new Option<int>("--width") { Description = "n_embd / hidden_size", DefaultValueFactory = _ => 64 };
        var intermediate = new Option<int?>("--intermediate") { Description = "intermediate_size of the SwiGLU MLP (Llama family; default 3 × width)" };
        var positions = new Option<int>("--positions") { Description = "n_positions / max_position_embeddings (longest sequence)", DefaultValueFactory = _ => 128 };
        var untied = new Option<bool>("--untied") { Description = "tie_word_embeddings false: a separate lm_head (Llama family)" };
        var seed = new Option<int>("--seed") { Description = "initialisation seed", DefaultValueFactory = _ => 0 };
        var init = new Command("init", "write a randomly initialised checkpoint in Hugging Face's layout")
        {
            output, arch, tokenizer, vocab, layers, heads, kvHeads, width, intermediate, positions, untied, dtype, shardMb, seed,
        };
        init.SetAction(parse => CommonOptions.Guard(() =>
        {
            string tokenizerName = parse.GetValue(tokenizer)!;
            string? tokenizerDir = TokenizerRegistry.Names.Contains(tokenizerName) ? null : tokenizerName;
            ITextTokenizer tok = tokenizerDir is null ? TokenizerRegistry.Get(tokenizerName)
                : Directory.Exists(tokenizerDir) && HfTokenizer.IsIn(tokenizerDir) ? HfTokenizer.Load(tokenizerDir)
                : throw new ArgumentException($"--tokenizer \"{tokenizerName}\": neither {string.Join(" nor ", TokenizerRegistry.Names)} nor a directory with {HfTokenizer.TokenizerFile}");
            int vocabSize = parse.GetValue(vocab) ?? tok.VocabSize;
            if (vocabSize < tok.VocabSize) throw new ArgumentException($"--vocab {vocabSize} is smaller than the tokenizer's {tok.VocabSize} ids");
            string? builtIn = tokenizerDir is null ? tok.Name : null;
            string type = parse.GetValue(arch)!;
            LmConfig config = type == "gpt2"
                ? new GptConfig(vocabSize, parse.GetValue(positions), parse.GetValue(width), parse.GetValue(layers), parse.GetValue(heads), Tokenizer: builtIn,
                    BosTokenId: builtIn is null ? tok.BosTokenId : null, EosTokenId: builtIn is null ? tok.EosTokenId : null)
                : DecoderConfigFor(type, tok, builtIn, vocabSize, parse.GetValue(width), parse.GetValue(intermediate), parse.GetValue(layers), parse.GetValue(heads),
                    parse.GetValue(kvHeads), parse.GetValue(positions), !parse.GetValue(untied));
            if (config is GptConfig gpt) gpt.Validate();
            ScalarType storage = parse.GetValue(dtype) switch
            {
                "fp32" => ScalarType.Float32,
                "bf16" => ScalarType.BFloat16,
                "fp16" => ScalarType.Float16,
                var other => throw new ArgumentException($"--dtype \"{other}\": expected fp32, bf16 or fp16"),
            };
            long shardBytes = parse.GetValue(shardMb) is long mb ? checked(mb * 1_000_000) : ShardedSafetensors.DefaultMaxShardBytes;
            using var generator = new torch.Generator((ulong)parse.GetValue(seed));
            using CausalLm model = config.CreateModel(generator);
            string dir = parse.GetValue(output)!.FullName;
            model.SourceDir = tokenizerDir; // its tokenizer files are copied along
            ModelCheckpoint.Save(model, dir, shardBytes, storage);
            long parameters = model.parameters().Sum(p => p.numel());
            Console.WriteLine($"wrote {dir}: {config.ModelType}, {parameters:N0} parameters, {Describe(config)}, vocab_size {vocabSize}, tokenizer {tok.Name}, {ModelCheckpoint.TorchDtypeName(storage)}");
            return 0;
        }));
        return new Command("model", "model checkpoints") { init };
    }

    /// <summary>A Llama-family config of the given size, otherwise with the transformers defaults of <paramref name="type"/>, through the same parser as config.json files.</summary>
    private static DecoderConfig DecoderConfigFor(string type, ITextTokenizer tok, string? builtIn, int vocabSize, int width, int? intermediate, int layers, int heads, int? kvHeads, int positions, bool tied)
    {
        if (!DecoderConfig.ModelTypes.Contains(type))
            throw new ArgumentException($"--arch \"{type}\" is not supported (gpt2, {string.Join(", ", DecoderConfig.ModelTypes)})");
        if (heads < 1 || width % heads != 0) throw new ArgumentException($"--width {width} must be a positive multiple of --heads {heads}");
        var root = new System.Text.Json.Nodes.JsonObject
        {
            ["model_type"] = type,
            ["vocab_size"] = vocabSize,
            ["hidden_size"] = width,
            ["intermediate_size"] = intermediate ?? 3 * width,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads ?? heads,
            ["head_dim"] = width / heads,
            ["max_position_embeddings"] = positions,
            ["tie_word_embeddings"] = tied,
            ["bos_token_id"] = tok.BosTokenId,
            ["eos_token_id"] = tok.EosTokenId,
            ["sliding_window"] = null,
        };
        if (builtIn is not null) root["kto_tokenizer"] = builtIn;
        return DecoderConfig.Parse(root, "--arch " + type) with { SourceJson = null };
    }

    private static string Describe(LmConfig config) => config switch
    {
        GptConfig g => $"{g.NLayer} layers × {g.NEmbd} wide, {g.NHead} heads, {g.NPositions} positions",
        DecoderConfig d => $"{d.NumHiddenLayers} layers × {d.HiddenSize} wide, {d.NumAttentionHeads} heads ({d.NumKeyValueHeads} key/value), "
            + $"intermediate {d.IntermediateSize}, {d.MaxPositionEmbeddings} positions, {(d.TieWordEmbeddings ? "tied" : "untied")} head",
        _ => config.ModelType,
    };
}
