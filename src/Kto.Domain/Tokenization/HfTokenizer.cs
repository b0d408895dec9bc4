using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kto.Domain.Tokenization;

/// <summary>
/// A checkpoint directory's own tokenizer as the Hub ships it: <c>tokenizer.json</c> run by Hugging Face's tokenizers
/// library (Rust, through Tokenizers.DotNet), so the ids of any text are the reference's by construction; special
/// tokens and the chat template from <c>tokenizer_config.json</c> (and a <c>chat_template.jinja</c> beside it, which
/// wins, as in transformers ≥ 4.47); stop ids from <c>generation_config.json</c>.
/// </summary>
/// <remarks>
/// <para><see cref="Encode"/> is <c>tokenizer.encode(text, add_special_tokens=False)</c>: the post-processor that adds
/// special tokens (TemplateProcessing, BertProcessing, RobertaProcessing) is taken out of the copy the library loads,
/// and what it would put before a text is <see cref="SpecialPrefix"/> instead. Special-token strings inside a text
/// still become their ids (transformers' default <c>split_special_tokens=False</c>).</para>
/// <para>Which special tokens a text gets: <c>add_bos_token</c> of tokenizer_config.json when it says (as
/// <c>LlamaTokenizerFast</c> and <c>GemmaTokenizerFast</c> rebuild their post-processor from it), else the tokens the
/// post-processor's <c>single</c> template puts before <c>$A</c> (Llama 3's <c>&lt;|begin_of_text|&gt;</c>). Qwen adds
/// none.</para>
/// </remarks>
public sealed class HfTokenizer : ITextTokenizer
{
    /// <summary>The tokenizer file.</summary>
    public const string TokenizerFile = "tokenizer.json";

    /// <summary>Special tokens, flags and the chat template.</summary>
    public const string ConfigFile = "tokenizer_config.json";

    /// <summary>The sidecar chat template (transformers ≥ 4.47); wins over tokenizer_config.json's.</summary>
    public const string ChatTemplateFile = "chat_template.jinja";

    /// <summary>Generation defaults, among them the ids that end a reply.</summary>
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>The files a checkpoint's tokenizer may consist of (copied with saved checkpoints).</summary>
    public static IReadOnlyList<string> Files { get; } =
        [TokenizerFile, ConfigFile, ChatTemplateFile, GenerationConfigFile, "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json"];

    private static readonly string[] SpecialTokenProcessors = ["TemplateProcessing", "BertProcessing", "RobertaProcessing"];
    private static readonly ConcurrentDictionary<string, HfTokenizer> Cache = new(StringComparer.Ordinal);

    private readonly Tokenizers.DotNet.Tokenizer _native;
    private readonly Lock _lock = new();

    private readonly IReadOnlyDictionary<int, string> _specialContents;

    private HfTokenizer(Tokenizers.DotNet.Tokenizer native, string name, int vocabSize, int eos, int bos, int[] prefix, int[] stops, string? chatTemplate,
        IReadOnlyDictionary<string, string?> specialTokens, IReadOnlyDictionary<int, string> specialContents)
    {
        _specialContents = specialContents;
        _native = native;
        Name = name;
        VocabSize = vocabSize;
        EosTokenId = eos;
        BosTokenId = bos;
        SpecialPrefix = prefix;
        StopTokenIds = stops;
        ChatTemplate = chatTemplate;
        SpecialTokens = specialTokens;
    }

    /// <summary><c>tokenizer.json</c> and the first 12 hex digits of its SHA-256: two checkpoints with equal names tokenize alike.</summary>
    public string Name { get; }

    /// <summary>One more than the largest id of the vocabulary and the added tokens (Qwen3: 151669; the model's vocab_size may be larger).</summary>
    public int VocabSize { get; }

    /// <summary>The id of tokenizer_config.json's <c>eos_token</c> (else config.json's <c>eos_token_id</c>): appended to text completions.</summary>
    public int EosTokenId { get; }

    /// <summary>
    /// The id of tokenizer_config.json's <c>bos_token</c>, else config.json's <c>bos_token_id</c>, else EOS: what an empty
    /// prompt becomes (Qwen has no BOS token; its config.json names <c>&lt;|endoftext|&gt;</c>).
    /// </summary>
    public int BosTokenId { get; }

    /// <summary>The ids put before a text when special tokens are asked for (transformers' <c>add_special_tokens=True</c>).</summary>
    public IReadOnlyList<int> SpecialPrefix { get; }

    /// <summary>Every id that ends a reply: generation_config.json's <c>eos_token_id</c> (an id or a list) and <see cref="EosTokenId"/>.</summary>
    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>The model's Jinja chat template (chat_template.jinja, else tokenizer_config.json's <c>chat_template</c>, the "default" one of a list), or null.</summary>
    public string? ChatTemplate { get; }

    /// <summary>tokenizer_config.json's special-token strings by name (<c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>, <c>unk_token</c>), null when unset: the variables chat templates read.</summary>
    public IReadOnlyDictionary<string, string?> SpecialTokens { get; }

    /// <summary>Whether <paramref name="dir"/> holds a tokenizer.json.</summary>
    public static bool IsIn(string dir) => File.Exists(Path.Combine(dir, TokenizerFile));

    /// <summary>
    /// The tokenizer of checkpoint directory <paramref name="dir"/> (loaded once per file content and process).
    /// <paramref name="configBos"/> and <paramref name="configEos"/> are config.json's ids, used when tokenizer_config.json names none.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is malformed, a special token is not in the vocabulary, or no EOS is named anywhere (file and key named).</exception>
    public static HfTokenizer Load(string dir, int? configBos = null, int? configEos = null)
    {
        string path = Path.Combine(dir, TokenizerFile);
        if (!File.Exists(path)) throw new InvalidDataException($"{dir}: no {TokenizerFile}");
        byte[] bytes = File.ReadAllBytes(path);
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        string key = string.Join('|', hash, Sha(Path.Combine(dir, ConfigFile)), Sha(Path.Combine(dir, ChatTemplateFile)), Sha(Path.Combine(dir, GenerationConfigFile)), configBos, configEos);
        return Cache.GetOrAdd(key, _ => Create(dir, path, bytes, hash, configBos, configEos));
    }

    private static string Sha(string path) => File.Exists(path) ? Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path))) : "-";

    private static HfTokenizer Create(string dir, string path, byte[] bytes, string hash, int? configBos, int? configEos)
    {
        JsonObject root = ParseObject(bytes, path);
        Dictionary<string, int> tokens = TokenIds(root, path, out int vocabSize);
        string configPath = Path.Combine(dir, ConfigFile);
        JsonObject config = File.Exists(configPath) ? ParseObject(File.ReadAllBytes(configPath), configPath) : [];

        var special = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (string name in new[] { "bos_token", "eos_token", "pad_token", "unk_token" }) special[name] = TokenString(config, name, configPath);
        int? Id(string name)
        {
            if (special[name] is not { } text) return null;
            return tokens.TryGetValue(text, out int id) ? id : throw new InvalidDataException($"{configPath}: \"{name}\" \"{text}\" is not a token of {path}");
        }
        int eos = Id("eos_token") ?? configEos
            ?? throw new InvalidDataException($"{configPath}: no \"eos_token\" (and config.json has no eos_token_id): the end of a completion cannot be marked");
        int bos = Id("bos_token") ?? configBos ?? eos;

        int[] prefix = config["add_bos_token"] switch
        {
            JsonValue v when v.TryGetValue(out bool add) => add ? [Id("bos_token") ?? throw new InvalidDataException($"{configPath}: \"add_bos_token\" is true but \"bos_token\" is not set")] : [],
            null => TemplatePrefix(root["post_processor"], path),
            var other => throw new InvalidDataException($"{configPath}: \"add_bos_token\" must be true or false, found {other.ToJsonString()}"),
        };

        var stops = new List<int> { eos };
        string generationPath = Path.Combine(dir, GenerationConfigFile);
        if (File.Exists(generationPath))
            foreach (int id in Ids(ParseObject(File.ReadAllBytes(generationPath), generationPath)["eos_token_id"], generationPath, "eos_token_id"))
                if (!stops.Contains(id)) stops.Add(id);

        string sidecar = Path.Combine(dir, ChatTemplateFile);
        string? template = File.Exists(sidecar) ? File.ReadAllText(sidecar) : TemplateOf(config, configPath);

        root["post_processor"] = WithoutSpecialTokens(root["post_processor"]?.DeepClone());
        string sanitized = Path.Combine(Path.GetTempPath(), $"kto-tokenizer-{hash[..16]}-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(sanitized, root.ToJsonString());
            Tokenizers.DotNet.Tokenizer native;
            try
            {
                native = new Tokenizers.DotNet.Tokenizer(sanitized);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidDataException($"{path}: Hugging Face's tokenizers library refused it: {e.Message}", e);
            }
            return new HfTokenizer(native, $"{TokenizerFile} ({hash[..12]})", vocabSize, eos, bos, prefix, [.. stops], template, special, SpecialContents(root));
        }
        finally
        {
            File.Delete(sanitized);
        }
    }

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        if (text.Length == 0) return [];
        uint[] ids;
        lock (_lock) ids = _native.Encode(text);
        return Array.ConvertAll(ids, id => checked((int)id));
    }

    /// <summary>The text of <paramref name="ids"/>, special tokens skipped (transformers' <c>skip_special_tokens=True</c>).</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        if (ids.Count == 0) return "";
        uint[] raw = new uint[ids.Count];
        for (int i = 0; i < raw.Length; i++) raw[i] = checked((uint)ids[i]);
        lock (_lock) return _native.Decode(raw);
    }

    /// <inheritdoc />
    public string DecodeWithSpecialTokens(IReadOnlyList<int> ids)
    {
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (!_specialContents.TryGetValue(id, out string? content))
            {
                run.Add(id);
                continue;
            }
            text.Append(Decode(run)).Append(content);
            run.Clear();
        }
        return text.Append(Decode(run)).ToString();
    }

    /// <summary>The text of every added token marked special, by id (the library's decode skips them).</summary>
    private static Dictionary<int, string> SpecialContents(JsonObject root)
    {
        var contents = new Dictionary<int, string>();
        if (root["added_tokens"] is JsonArray added)
            foreach (JsonNode? t in added)
                if (t?["special"]?.GetValue<bool>() == true && t["content"]?.GetValue<string>() is { } content && t["id"]?.GetValue<int>() is int id)
                    contents[id] = content;
        return contents;
    }

    private static JsonObject ParseObject(byte[] bytes, string path)
    {
        try
        {
            return JsonNode.Parse(bytes) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: malformed JSON: {e.Message}", e);
        }
    }

    /// <summary>Every token string's id (the model's vocabulary and the added tokens); <paramref name="size"/> is one more than the largest id.</summary>
    private static Dictionary<string, int> TokenIds(JsonObject root, string path, out int size)
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int max = -1;
        void Add(string token, int id)
        {
            ids.TryAdd(token, id);
            max = Math.Max(max, id);
        }
        switch (root["model"]?["vocab"])
        {
            case JsonObject vocab: // BPE, WordPiece, WordLevel
                foreach (var (token, id) in vocab) Add(token, id!.GetValue<int>());
                break;
            case JsonArray pieces: // Unigram: [piece, score] in id order
                for (int i = 0; i < pieces.Count; i++) Add(pieces[i]![0]!.GetValue<string>(), i);
                break;
            default:
                throw new InvalidDataException($"{path}: \"model.vocab\" missing (expected the vocabulary of a BPE, WordPiece, WordLevel or Unigram model)");
        }
        if (root["added_tokens"] is JsonArray added)
            foreach (JsonNode? t in added)
                if (t?["content"]?.GetValue<string>() is { } content && t["id"]?.GetValue<int>() is int id)
                {
                    ids[content] = id; // an added token wins over a vocabulary entry of the same text
                    max = Math.Max(max, id);
                }
        size = max + 1;
        return ids;
    }

    /// <summary>A special token's text: a string, an AddedToken object's <c>content</c>, or null.</summary>
    private static string? TokenString(JsonObject config, string key, string path) => config[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue(out string? s) => s,
        var other => throw new InvalidDataException($"{path}: \"{key}\" must be a token string or an object with \"content\", found {other.ToJsonString()}"),
    };

    private static string? TemplateOf(JsonObject config, string path) => config["chat_template"] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonArray list => list.OfType<JsonObject>().FirstOrDefault(t => t["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>()
            ?? throw new InvalidDataException($"{path}: \"chat_template\" is a list without a template named \"default\""),
        var other => throw new InvalidDataException($"{path}: \"chat_template\" must be a string or a list of {{name, template}}, found {other.ToJsonString()[..Math.Min(60, other.ToJsonString().Length)]}"),
    };

    /// <summary>An id or a list of ids (empty when absent).</summary>
    private static IEnumerable<int> Ids(JsonNode? node, string path, string key) => node switch
    {
        null => [],
        JsonValue v when v.TryGetValue(out int id) => [id],
        JsonArray list => list.Select(x => x is JsonValue iv && iv.TryGetValue(out int id) ? id
            : throw new InvalidDataException($"{path}: \"{key}\" must be an id or a list of ids, found {node.ToJsonString()}")),
        _ => throw new InvalidDataException($"{path}: \"{key}\" must be an id or a list of ids, found {node.ToJsonString()}"),
    };

    /// <summary>The ids a post-processor puts before <c>$A</c> in its single-sequence template (TemplateProcessing, also inside a Sequence; Bert/Roberta: cls).</summary>
    private static int[] TemplatePrefix(JsonNode? processor, string path)
    {
        switch (processor?["type"]?.GetValue<string>())
        {
            case "Sequence":
                return [.. (processor["processors"] as JsonArray ?? []).SelectMany(p => TemplatePrefix(p, path))];
            case "TemplateProcessing":
                var prefix = new List<int>();
                foreach (JsonNode? piece in processor["single"] as JsonArray ?? [])
                {
                    if (piece?["Sequence"] is not null) break;
                    string? name = piece?["SpecialToken"]?["id"]?.GetValue<string>();
                    JsonNode? ids = name is null ? null : processor["special_tokens"]?[name]?["ids"];
                    if (ids is null) throw new InvalidDataException($"{path}: post_processor.single names special token \"{name}\" that special_tokens does not define");
                    prefix.AddRange(Ids(ids, path, $"post_processor.special_tokens.{name}.ids"));
                }
                return [.. prefix];
            case "BertProcessing" or "RobertaProcessing":
                return processor["cls"] is JsonArray { Count: 2 } cls ? [cls[1]!.GetValue<int>()] : [];
            default:
                return [];
        }
    }

    /// <summary>The post-processor without the steps that add special tokens (a ByteLevel step, which only changes offsets, stays).</summary>
    private static JsonNode? WithoutSpecialTokens(JsonNode? processor)
    {
        string? type = processor?["type"]?.GetValue<string>();
        if (type is null) return processor;
        if (SpecialTokenProcessors.Contains(type)) return null;
        if (type == "Sequence" && processor!["processors"] is JsonArray steps)
        {
            var kept = new JsonArray();
            foreach (JsonNode? step in steps)
                if (WithoutSpecialTokens(step?.DeepClone()) is { } k) kept.Add(k);
            if (kept.Count == 0) return null;
            processor["processors"] = kept;
        }
        return processor;
    }
}
