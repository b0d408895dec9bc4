using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Model;

/// <summary>
/// A LoRA configuration with TRL's <c>ModelConfig</c> / PEFT's <c>LoraConfig</c> names and TRL's defaults.
/// </summary>
/// <param name="R"><c>lora_r</c>: rank (16).</param>
/// <param name="Alpha"><c>lora_alpha</c> (32).</param>
/// <param name="Dropout"><c>lora_dropout</c> (0.05).</param>
/// <param name="TargetModules"><c>lora_target_modules</c>: module names as PEFT matches them (the last component of
/// a module's path, e.g. <c>q_proj</c>, GPT-2's <c>c_attn</c>), or the single entry <c>all-linear</c> (every linear
/// map except the output head); null: PEFT's per-architecture defaults (q_proj and v_proj; GPT-2's c_attn).</param>
/// <param name="UseRslora"><c>use_rslora</c>: scaling alpha/√r instead of alpha/r.</param>
/// <param name="ModulesToSave"><c>lora_modules_to_save</c> (PEFT's <c>modules_to_save</c>): modules trained in full beside
/// the adapters and saved in the adapter file (e.g. <c>lm_head</c>, <c>embed_tokens</c>); a name matches a module whose
/// path is it or ends with "." + it. The reference keeps their original weights.</param>
public sealed record LoraOptions(int R = 16, double Alpha = 32, double Dropout = 0.05, IReadOnlyList<string>? TargetModules = null, bool UseRslora = false,
    IReadOnlyList<string>? ModulesToSave = null)
{
    /// <summary>PEFT's name for every linear map but the output head.</summary>
    public const string AllLinear = "all-linear";

    /// <summary>The target names for <paramref name="modelType"/> when none are given (PEFT's defaults).</summary>
    public IReadOnlyList<string> Targets(string modelType) => TargetModules ?? (modelType == "gpt2" ? ["c_attn"] : ["q_proj", "v_proj"]);
}

/// <summary>
/// LoRA adapters on a <see cref="CausalLm"/> as PEFT puts them: attached to the layers whose name matches a target,
/// the base weights frozen, and saved and loaded in PEFT's format (<c>adapter_config.json</c> +
/// <c>adapter_model.safetensors</c> with keys <c>base_model.model.&lt;module path&gt;.lora_A.weight</c> (r, in) and
/// <c>.lora_B.weight</c> (out, r)), so <c>PeftModel.from_pretrained</c> loads ours and ours load PEFT's.
/// </summary>
public static class LoraAdapters
{
    /// <summary>PEFT's adapter config file.</summary>
    public const string ConfigFile = "adapter_config.json";

    /// <summary>PEFT's adapter weights file.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    private const string KeyPrefix = "base_model.model.";

    /// <summary>
    /// Attaches adapters to every layer of <paramref name="model"/> whose name matches <paramref name="options"/>'
    /// targets and freezes everything else (no gradient, so no optimizer state either). Returns the adapted module paths.
    /// </summary>
    /// <exception cref="ArgumentException">A target matches no layer (the message lists the names that exist), or a value is out of range.</exception>
    public static IReadOnlyList<string> Attach(CausalLm model, LoraOptions options, Generator? generator = null)
    {
        var layers = Layers(model);
        IReadOnlyList<string> targets = options.Targets(model.LmConfig.ModelType);
        bool all = targets.Count == 1 && targets[0] == LoraOptions.AllLinear;
        string[] names = [.. layers.Select(l => Leaf(l.Path)).Distinct().Order(StringComparer.Ordinal)];
        if (!all)
            foreach (string t in targets)
                if (!names.Contains(t))
                    throw new ArgumentException($"lora_target_modules: \"{t}\" matches no module of this {model.LmConfig.ModelType} model (its linear modules: {string.Join(", ", names)}, or \"{LoraOptions.AllLinear}\")");
        string[] modules = [.. model.named_parameters().Select(p => ModulePath(p.name)).Distinct().Order(StringComparer.Ordinal)];
        foreach (string m in options.ModulesToSave ?? [])
            if (!modules.Any(path => Matches(path, m)))
                throw new ArgumentException($"lora_modules_to_save: \"{m}\" matches no module of this {model.LmConfig.ModelType} model (its modules with weights: {string.Join(", ", modules.Select(Leaf).Distinct().Order(StringComparer.Ordinal))})");
        var adapted = new List<string>();
        foreach (var (path, layer) in layers)
        {
            if (!all && !targets.Contains(Leaf(path))) continue;
            layer.AddLora(options.R, options.Alpha, options.Dropout, options.UseRslora, generator);
            layer.AdapterIndex = adapted.Count;
            adapted.Add(path);
        }
        model.Lora = options;
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = IsAdapterParameter(model, name);
        return adapted;
    }

    /// <summary>
    /// Whether <paramref name="name"/> is one of the parameters a LoRA model trains and its adapter file holds: an
    /// adapter matrix, or a weight of a module in <c>modules_to_save</c>.
    /// </summary>
    public static bool IsAdapterParameter(CausalLm model, string name) =>
        IsLoraParameter(name) || (model.Lora?.ModulesToSave ?? []).Any(m => Matches(ModulePath(name), m));

    /// <summary>The parameters <see cref="IsAdapterParameter"/> names, in registration order.</summary>
    public static List<(string Name, TorchSharp.Modules.Parameter Parameter)> AdapterParameters(CausalLm model) =>
        [.. model.named_parameters().Where(p => IsAdapterParameter(model, p.name)).Select(p => (p.name, p.parameter))];

    private static string ModulePath(string parameterName) => parameterName[..Math.Max(0, parameterName.LastIndexOf('.'))];

    private static bool Matches(string modulePath, string name) => modulePath == name || modulePath.EndsWith("." + name, StringComparison.Ordinal);

    /// <summary>Sets every adapter's dropout probability (0 turns it off: TRL's <c>disable_dropout</c>).</summary>
    public static void SetDropout(CausalLm model, double p)
    {
        foreach (var (_, layer) in Layers(model))
            if (layer.HasLora) layer.LoraDropout = p;
    }

    /// <summary>Whether any adapter applies dropout while training.</summary>
    public static bool HasDropout(CausalLm model) => Layers(model).Any(l => l.Layer.HasLora && l.Layer.LoraDropout > 0);

    /// <summary>
    /// Until disposed, the adapters' dropout masks for the rows of the next inputs come from <paramref name="rowSeeds"/>
    /// (one per row, <see cref="LoraDropoutSeeds.ForRow"/>) instead of the global generator.
    /// </summary>
    public static IDisposable DropoutSeeds(CausalLm model, long[] rowSeeds)
    {
        var layers = Layers(model).Where(l => l.Layer.HasLora).Select(l => l.Layer).ToList();
        foreach (var layer in layers) layer.DropoutRowSeeds = rowSeeds;
        return new Restore(() =>
        {
            foreach (var layer in layers) layer.DropoutRowSeeds = null;
        });
    }

    /// <summary>
    /// The model's adaptable layers, each once under its registered path (TorchSharp's <c>named_modules</c> also lists
    /// modules under the names of the fields that hold them, e.g. <c>_q</c> beside <c>q_proj</c>).
    /// </summary>
    private static List<(string Path, AdaptableLayer Layer)> Layers(CausalLm model) =>
    [
        .. model.named_modules().Where(m => m.module is AdaptableLayer)
            .GroupBy(m => m.module, ReferenceEqualityComparer.Instance)
            .Select(g => g.OrderBy(m => m.name.Split('.').Any(part => part.StartsWith('_')) ? 1 : 0).First())
            .Select(m => (m.name, (AdaptableLayer)m.module)),
    ];

    /// <summary>Whether a parameter name is an adapter's (<c>….lora_A.weight</c> or <c>….lora_B.weight</c>).</summary>
    public static bool IsLoraParameter(string name) => name.EndsWith(".lora_A.weight", StringComparison.Ordinal) || name.EndsWith(".lora_B.weight", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="model"/> carries adapters.</summary>
    public static bool HasAdapters(CausalLm model) => model.named_modules().Any(m => m.module is AdaptableLayer { HasLora: true });

    /// <summary>Turns every adapter on or off (off: the base model's forward, exactly).</summary>
    public static void SetEnabled(CausalLm model, bool enabled)
    {
        foreach (var (_, m) in model.named_modules())
            if (m is AdaptableLayer layer) layer.LoraEnabled = enabled;
    }

    /// <summary>Adapters off until disposed (the reference model of a LoRA run is the base: TRL's way with a PEFT model and no ref_model).</summary>
    public static IDisposable Disabled(CausalLm model)
    {
        SetEnabled(model, false);
        return new Restore(() => SetEnabled(model, true));
    }

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }

    /// <summary>
    /// Writes <paramref name="model"/>'s adapters into <paramref name="dir"/> in PEFT's format (each file atomically).
    /// </summary>
    /// <param name="model">A model with adapters.</param>
    /// <param name="dir">The adapter directory.</param>
    /// <param name="options">The adapters' configuration (written to adapter_config.json).</param>
    /// <param name="baseModel">The base checkpoint (adapter_config.json's <c>base_model_name_or_path</c>).</param>
    public static void Save(CausalLm model, string dir, LoraOptions options, string? baseModel)
    {
        Directory.CreateDirectory(dir);
        var tensors = AdapterParameters(model).ToDictionary(p => KeyPrefix + p.Name, p => (Tensor)p.Parameter.detach(), StringComparer.Ordinal);
        if (tensors.Count == 0) throw new InvalidOperationException("the model has no adapters to save");
        var targets = new JsonArray();
        foreach (string t in options.Targets(model.LmConfig.ModelType)) targets.Add(t);
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = options.R,
            ["lora_alpha"] = options.Alpha,
            ["lora_dropout"] = options.Dropout,
            ["target_modules"] = targets.Count == 1 && options.Targets(model.LmConfig.ModelType)[0] == LoraOptions.AllLinear ? LoraOptions.AllLinear : targets,
            ["use_rslora"] = options.UseRslora,
            ["fan_in_fan_out"] = model is GptLmHeadModel,
            ["bias"] = "none",
            ["modules_to_save"] = options.ModulesToSave is { Count: > 0 } save ? new JsonArray([.. save.Select(m => (JsonNode?)JsonValue.Create(m))]) : null,
            ["init_lora_weights"] = true,
            ["inference_mode"] = true,
        };
        AtomicFile.WriteText(Path.Combine(dir, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.Write(Path.Combine(dir, WeightsFile), s => Safetensors.Write(s, tensors, new Dictionary<string, string> { ["format"] = "pt" }));
    }

    /// <summary>Reads a PEFT adapter_config.json.</summary>
    /// <exception cref="InvalidDataException">The file is missing or malformed, or is not a LoRA adapter (key named).</exception>
    public static LoraOptions ReadConfig(string dir)
    {
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new InvalidDataException($"{dir}: not a PEFT adapter (no {ConfigFile})");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: malformed JSON: {e.Message}", e);
        }
        string? type = root["peft_type"]?.GetValue<string>();
        if (type != "LORA") throw new InvalidDataException($"{path}: \"peft_type\" \"{type}\" is not supported (LoRA adapters only: \"LORA\")");
        IReadOnlyList<string>? targets = root["target_modules"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out string? one) => [one],
            JsonArray list => [.. list.Select(x => x!.GetValue<string>())],
            var other => throw new InvalidDataException($"{path}: \"target_modules\" must be a name or a list of names, found {other.ToJsonString()}"),
        };
        IReadOnlyList<string>? save = root["modules_to_save"] switch
        {
            null => null,
            JsonArray list => [.. list.Select(x => x!.GetValue<string>())],
            var other => throw new InvalidDataException($"{path}: \"modules_to_save\" must be a list of names or null, found {other.ToJsonString()}"),
        };
        int r = root["r"]?.GetValue<int>() ?? 8;
        if (r <= 0) throw new InvalidDataException($"{path}: \"r\" must be positive, got {r}");
        return new LoraOptions(r, root["lora_alpha"]?.GetValue<double>() ?? 8, root["lora_dropout"]?.GetValue<double>() ?? 0, targets,
            root["use_rslora"]?.GetValue<bool>() ?? false, save);
    }

    /// <summary>
    /// Attaches the adapter in <paramref name="dir"/> (PEFT's format: ours or PEFT's own) to <paramref name="model"/> and
    /// loads its weights; the base is frozen. Returns its options.
    /// </summary>
    /// <exception cref="InvalidDataException">A config or weights problem: another PEFT type, a target the model lacks, a
    /// tensor missing, unexpected or of a shape that does not fit the base (named).</exception>
    public static LoraOptions Load(CausalLm model, string dir)
    {
        LoraOptions options = ReadConfig(dir);
        try
        {
            Attach(model, options);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{Path.Combine(dir, ConfigFile)}: {e.Message}", e);
        }
        LoadWeights(model, dir);
        return options;
    }

    /// <summary>Loads the adapter weights of <paramref name="dir"/> into the adapters <paramref name="model"/> already carries (a resume).</summary>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or of another shape (named).</exception>
    public static void LoadWeights(CausalLm model, string dir)
    {
        string path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path)) throw new InvalidDataException($"{dir}: {WeightsFile} missing");
        Safetensors.Contents stored = Safetensors.Read(path);
        try
        {
            var parameters = AdapterParameters(model).ToDictionary(p => p.Name, p => (Tensor)p.Parameter, StringComparer.Ordinal);
            using var noGrad = no_grad();
            foreach (var (key, t) in stored.Tensors)
            {
                // PEFT names: base_model.model.<path>.lora_A.weight and <module>.weight for modules_to_save; in memory PEFT
                // also writes the adapter name (.lora_A.default.weight, .modules_to_save.default.weight).
                string name = key.StartsWith(KeyPrefix, StringComparison.Ordinal) ? key[KeyPrefix.Length..] : key;
                name = name.Replace(".lora_A.default.weight", ".lora_A.weight", StringComparison.Ordinal).Replace(".lora_B.default.weight", ".lora_B.weight", StringComparison.Ordinal)
                    .Replace(".modules_to_save.default.", ".", StringComparison.Ordinal);
                if (!parameters.Remove(name, out Tensor? p))
                    throw new InvalidDataException($"{path}: tensor \"{key}\" is not an adapter of this model with {Path.Combine(dir, ConfigFile)}'s target_modules and modules_to_save");
                if (!t.shape.SequenceEqual(p.shape))
                    throw new InvalidDataException($"{path}: tensor \"{key}\" has shape [{string.Join(", ", t.shape)}], but the base model needs [{string.Join(", ", p.shape)}]");
                p.copy_(t.to_type(p.dtype));
            }
            if (parameters.Keys.FirstOrDefault() is { } missing) throw new InvalidDataException($"{path}: tensor \"{KeyPrefix + missing}\" missing");
        }
        finally
        {
            foreach (Tensor t in stored.Tensors.Values) t.Dispose();
        }
    }

    /// <summary>Folds every adapter into its base weight (W += scaling·B·A, transposed for Conv1D). The adapters stay attached, so the model must not run afterwards; save it with <see cref="ModelCheckpoint.Save"/>, which writes the base parameters only.</summary>
    public static void MergeInto(CausalLm model)
    {
        using var noGrad = no_grad();
        foreach (var (name, layer) in Layers(model))
        {
            if (!layer.HasLora) continue;
            Tensor weight = model.named_parameters().Single(p => p.name == name + ".weight").parameter;
            using Tensor delta = layer.MergedDelta();
            weight.add_(delta.to_type(weight.dtype), Scalars.One);
        }
    }

    private static string Leaf(string path) => path[(path.LastIndexOf('.') + 1)..];
}
