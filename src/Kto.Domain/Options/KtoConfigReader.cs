using System.Globalization;
using System.Text;
using System.Text.Json;
using Kto.Domain.Loss;

namespace Kto.Domain.Options;

/// <summary>
/// Reads a <see cref="KtoConfig"/> from a flat snake_case JSON object. Unknown keys, wrong types and invalid
/// values are rejected with the file, line and key; relative paths are resolved against the config's folder.
/// </summary>
public static class KtoConfigReader
{
    private delegate KtoConfig Setter(KtoConfig config, JsonElement value, string where);

    private static readonly Dictionary<string, Setter> Fields = new(StringComparer.Ordinal)
    {
        ["model_name_or_path"] = (c, v, w) => c with { ModelNameOrPath = Str(v, w) },
        ["ref_model_name_or_path"] = (c, v, w) => c with { RefModelNameOrPath = NullableStr(v, w) },
        ["dataset_path"] = (c, v, w) => c with { DatasetPath = Str(v, w) },
        ["output_dir"] = (c, v, w) => c with { OutputDir = Str(v, w) },
        ["beta"] = (c, v, w) => c with { Beta = Num(v, w) },
        ["desirable_weight"] = (c, v, w) => c with { DesirableWeight = Num(v, w) },
        ["undesirable_weight"] = (c, v, w) => c with { UndesirableWeight = Num(v, w) },
        ["loss_type"] = (c, v, w) => c with { LossType = KtoLossTypeNames.Parse(Str(v, w)) ?? throw Bad(w, $"\"{KtoLossTypeNames.Kto}\" or \"{KtoLossTypeNames.ApoZeroUnpaired}\"", v) },
        ["max_length"] = (c, v, w) => c with { MaxLength = Int(v, w) },
        ["max_prompt_length"] = (c, v, w) => c with { MaxPromptLength = Int(v, w) },
        ["max_completion_length"] = (c, v, w) => c with { MaxCompletionLength = NullableInt(v, w) },
        ["precompute_ref_log_probs"] = (c, v, w) => c with { PrecomputeRefLogProbs = Bool(v, w) },
        ["learning_rate"] = (c, v, w) => c with { LearningRate = Num(v, w) },
        ["lr_scheduler_type"] = (c, v, w) => c with { LrSchedulerType = Str(v, w) },
        ["warmup_ratio"] = (c, v, w) => c with { WarmupRatio = Num(v, w) },
        ["warmup_steps"] = (c, v, w) => c with { WarmupSteps = Int(v, w) },
        ["weight_decay"] = (c, v, w) => c with { WeightDecay = Num(v, w) },
        ["adam_beta1"] = (c, v, w) => c with { AdamBeta1 = Num(v, w) },
        ["adam_beta2"] = (c, v, w) => c with { AdamBeta2 = Num(v, w) },
        ["adam_epsilon"] = (c, v, w) => c with { AdamEpsilon = Num(v, w) },
        ["max_grad_norm"] = (c, v, w) => c with { MaxGradNorm = Num(v, w) },
        ["per_device_train_batch_size"] = (c, v, w) => c with { PerDeviceTrainBatchSize = Int(v, w) },
        ["gradient_accumulation_steps"] = (c, v, w) => c with { GradientAccumulationSteps = Int(v, w) },
        ["num_train_epochs"] = (c, v, w) => c with { NumTrainEpochs = Num(v, w) },
        ["max_steps"] = (c, v, w) => c with { MaxSteps = Int(v, w) },
        ["seed"] = (c, v, w) => c with { Seed = Int(v, w) },
        ["data_seed"] = (c, v, w) => c with { DataSeed = NullableInt(v, w) },
        ["shuffle"] = (c, v, w) => c with { Shuffle = Bool(v, w) },
        ["logging_steps"] = (c, v, w) => c with { LoggingSteps = Int(v, w) },
        ["save_steps"] = (c, v, w) => c with { SaveSteps = Int(v, w) },
        ["save_total_limit"] = (c, v, w) => c with { SaveTotalLimit = NullableInt(v, w) },
        ["overwrite_output_dir"] = (c, v, w) => c with { OverwriteOutputDir = Bool(v, w) },
        ["resume_from_checkpoint"] = (c, v, w) => c with { ResumeFromCheckpoint = NullableStr(v, w) },
        ["device"] = (c, v, w) => c with { Device = Str(v, w) },
        ["num_threads"] = (c, v, w) => c with { NumThreads = Int(v, w) },
        ["chat_template"] = (c, v, w) => c with { ChatTemplate = NullableStr(v, w) },
        ["bf16"] = (c, v, w) => c with { Bf16 = Bool(v, w) },
        ["use_peft"] = (c, v, w) => c with { UsePeft = Bool(v, w) },
        ["lora_r"] = (c, v, w) => c with { LoraR = Int(v, w) },
        ["lora_alpha"] = (c, v, w) => c with { LoraAlpha = Num(v, w) },
        ["lora_dropout"] = (c, v, w) => c with { LoraDropout = Num(v, w) },
        ["lora_target_modules"] = (c, v, w) => c with { LoraTargetModules = StrList(v, w) },
        ["use_rslora"] = (c, v, w) => c with { UseRslora = Bool(v, w) },
        ["lora_modules_to_save"] = (c, v, w) => c with { LoraModulesToSave = StrList(v, w) },
        ["disable_dropout"] = (c, v, w) => c with { DisableDropout = Bool(v, w) },
        ["full_determinism"] = (c, v, w) => c with { FullDeterminism = Bool(v, w) },
        ["determinism_slices"] = (c, v, w) => c with { DeterminismSlices = Int(v, w) },
        ["balance_shards"] = (c, v, w) => c with { BalanceShards = Bool(v, w) },
        ["adapter_name_or_path"] = (c, v, w) => c with { AdapterNameOrPath = NullableStr(v, w) },
        ["eval_dataset_path"] = (c, v, w) => c with { EvalDatasetPath = NullableStr(v, w) },
        ["eval_strategy"] = (c, v, w) => c with { EvalStrategy = Str(v, w) },
        ["eval_steps"] = (c, v, w) => c with { EvalSteps = NullableInt(v, w) },
        ["per_device_eval_batch_size"] = (c, v, w) => c with { PerDeviceEvalBatchSize = Int(v, w) },
        ["fp16"] = (c, v, w) => c with { Fp16 = Bool(v, w) },
    };

    /// <summary>Keys that only KTO runs read; an SFT config rejects them.</summary>
    public static readonly IReadOnlySet<string> KtoOnlyKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "ref_model_name_or_path", "beta", "desirable_weight", "undesirable_weight", "loss_type", "precompute_ref_log_probs",
        "eval_dataset_path", "eval_strategy", "eval_steps", "per_device_eval_batch_size",
    };

    /// <summary>The keys a run config may contain.</summary>
    public static IReadOnlyCollection<string> Keys => Fields.Keys;

    /// <summary>The keys a config of <paramref name="kind"/> may contain.</summary>
    public static IEnumerable<string> KeysFor(RunKind kind) => kind == RunKind.Kto ? Fields.Keys : Fields.Keys.Where(k => !KtoOnlyKeys.Contains(k));

    /// <summary>Reads, resolves and validates the config at <paramref name="path"/>.</summary>
    /// <exception cref="ConfigException">The file is missing, malformed or holds an invalid value.</exception>
    public static KtoConfig Load(string path, RunKind kind = RunKind.Kto)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: run config not found");
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        byte[] bytes = File.ReadAllBytes(path);
        KtoConfig config = Parse(bytes, path, kind);
        return ApplyAdapterConfig(ReadChatTemplateFile(ResolvePaths(config, baseDir), path, baseDir), bytes, path);
    }

    /// <summary>
    /// With <c>adapter_name_or_path</c>, the LoRA settings come from the adapter's adapter_config.json (PEFT's names r,
    /// lora_alpha, target_modules, use_rslora, modules_to_save; lora_dropout unless the file sets it) and use_peft is on.
    /// A LoRA key the file sets to another value than the adapter's is an error: the adapter's shapes are fixed.
    /// </summary>
    private static KtoConfig ApplyAdapterConfig(KtoConfig c, byte[] bytes, string path)
    {
        if (c.AdapterNameOrPath is not { } dir) return c;
        var present = new Dictionary<string, int>(StringComparer.Ordinal);
        int[] lines = PropertyLines(bytes);
        using (var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }))
        {
            int i = 0;
            foreach (JsonProperty p in doc.RootElement.EnumerateObject()) present.TryAdd(p.Name, i < lines.Length ? lines[i++] : 0);
        }
        Model.LoraOptions adapter;
        try
        {
            adapter = Model.LoraAdapters.ReadConfig(dir);
        }
        catch (InvalidDataException e)
        {
            throw new ConfigException($"{path}:{present["adapter_name_or_path"]}: \"adapter_name_or_path\": {e.Message}", e);
        }
        string adapterConfig = Path.Combine(dir, Model.LoraAdapters.ConfigFile);
        void Same(string key, string peftKey, bool same, string ours, string theirs)
        {
            if (present.TryGetValue(key, out int line) && !same)
                throw new ConfigException($"{path}:{line}: \"{key}\" is {ours}, but the adapter to continue ({adapterConfig}) has {peftKey} {theirs}: leave the key out");
        }
        static string List(IReadOnlyList<string>? l) => l is null ? "null" : $"[{string.Join(", ", l)}]";
        static bool SameList(IReadOnlyList<string>? a, IReadOnlyList<string>? b) => (a ?? []).SequenceEqual(b ?? []);
        if (present.TryGetValue("use_peft", out int peftLine) && !c.UsePeft)
            throw new ConfigException($"{path}:{peftLine}: \"use_peft\" is false, but adapter_name_or_path continues a LoRA adapter");
        Same("lora_r", "r", c.LoraR == adapter.R, Format(c.LoraR), Format(adapter.R));
        Same("lora_alpha", "lora_alpha", c.LoraAlpha == adapter.Alpha, Format(c.LoraAlpha), Format(adapter.Alpha));
        Same("lora_target_modules", "target_modules", SameList(c.LoraTargetModules, adapter.TargetModules), List(c.LoraTargetModules), List(adapter.TargetModules));
        Same("use_rslora", "use_rslora", c.UseRslora == adapter.UseRslora, c.UseRslora ? "true" : "false", adapter.UseRslora ? "true" : "false");
        Same("lora_modules_to_save", "modules_to_save", SameList(c.LoraModulesToSave, adapter.ModulesToSave), List(c.LoraModulesToSave), List(adapter.ModulesToSave));
        return c with
        {
            UsePeft = true,
            LoraR = adapter.R,
            LoraAlpha = adapter.Alpha,
            LoraTargetModules = adapter.TargetModules,
            UseRslora = adapter.UseRslora,
            LoraModulesToSave = adapter.ModulesToSave,
            LoraDropout = present.ContainsKey("lora_dropout") ? c.LoraDropout : adapter.Dropout,
        };
    }

    /// <summary>A <c>chat_template</c> that names a <c>.jinja</c> file (relative to the config) is replaced by the file's text.</summary>
    private static KtoConfig ReadChatTemplateFile(KtoConfig c, string path, string baseDir)
    {
        if (c.ChatTemplate is not { } value || !value.EndsWith(".jinja", StringComparison.Ordinal) || value.Contains('\n', StringComparison.Ordinal) || value.Contains("{%", StringComparison.Ordinal) || value.Contains("{{", StringComparison.Ordinal))
            return c;
        string file = Path.IsPathRooted(value) ? value : Path.GetFullPath(Path.Combine(baseDir, value));
        if (!File.Exists(file))
        {
            int line = Array.FindIndex(File.ReadAllLines(path), l => l.Contains("\"chat_template\"", StringComparison.Ordinal)) + 1;
            throw new ConfigException($"{path}:{line}: \"chat_template\": template file {file} not found");
        }
        return c with { ChatTemplate = File.ReadAllText(file) };
    }

    /// <summary>Parses and validates a config held in memory; <paramref name="source"/> names it in errors.</summary>
    public static KtoConfig Parse(byte[] utf8Json, string source, RunKind kind = RunKind.Kto)
    {
        var config = kind == RunKind.Kto ? new KtoConfig() : SftDefaults.Config;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var keyLines = new Dictionary<string, int>(StringComparer.Ordinal);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{source}:{(e.LineNumber ?? 0) + 1}: malformed JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ConfigException($"{source}: expected a JSON object of settings, found {doc.RootElement.ValueKind}");
            int[] lines = PropertyLines(utf8Json);
            int index = 0;
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                int line = index < lines.Length ? lines[index] : 0;
                index++;
                keyLines.TryAdd(p.Name, line);
                string where = $"{source}:{line}: \"{p.Name}\"";
                if (!Fields.TryGetValue(p.Name, out Setter? set))
                    throw new ConfigException($"{where}: unknown setting{Suggest(p.Name)}");
                if (kind == RunKind.Sft && KtoOnlyKeys.Contains(p.Name))
                    throw new ConfigException($"{where}: a KTO setting; supervised fine-tuning (kto sft) does not use it");
                if (!seen.Add(p.Name))
                    throw new ConfigException($"{where}: set twice");
                config = set(config, p.Value, where);
            }
        }
        KtoConfigValidation.Validate(config, source, kind, key => keyLines.TryGetValue(key, out int l) ? l : null);
        return config;
    }

    private static KtoConfig ResolvePaths(KtoConfig c, string baseDir)
    {
        string Abs(string p) => Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(baseDir, p));
        return c with
        {
            ModelNameOrPath = Abs(c.ModelNameOrPath),
            RefModelNameOrPath = c.RefModelNameOrPath is null ? null : Abs(c.RefModelNameOrPath),
            DatasetPath = Abs(c.DatasetPath),
            EvalDatasetPath = c.EvalDatasetPath is null ? null : Abs(c.EvalDatasetPath),
            AdapterNameOrPath = c.AdapterNameOrPath is null ? null : Abs(c.AdapterNameOrPath),
            OutputDir = Abs(c.OutputDir),
            ResumeFromCheckpoint = c.ResumeFromCheckpoint is null or ResumeLatest ? c.ResumeFromCheckpoint : Abs(c.ResumeFromCheckpoint),
        };
    }

    /// <summary>The value of resume_from_checkpoint that picks the newest checkpoint in output_dir.</summary>
    public const string ResumeLatest = "latest";

    /// <summary>1-based line of each top-level property name, in document order.</summary>
    private static int[] PropertyLines(byte[] utf8)
    {
        var lines = new List<int>();
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
                lines.Add(1 + CountNewlines(utf8, (int)reader.TokenStartIndex));
        }
        return lines.ToArray();
    }

    private static int CountNewlines(byte[] utf8, int end)
    {
        int n = 0;
        for (int i = 0; i < end; i++) if (utf8[i] == (byte)'\n') n++;
        return n;
    }

    private static string Suggest(string name)
    {
        string? best = Fields.Keys.OrderBy(k => Distance(k, name)).FirstOrDefault();
        return best != null && Distance(best, name) <= 3 ? $" (did you mean \"{best}\"?)" : $"; known settings: {string.Join(", ", Fields.Keys.Order())}";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    private static ConfigException Bad(string where, string expected, JsonElement v)
        => new($"{where}: expected {expected}, found {Describe(v)}");

    private static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{v.GetString()}\"",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        JsonValueKind.Null => "null",
        _ => $"a JSON {v.ValueKind.ToString().ToLowerInvariant()}",
    };

    private static string Str(JsonElement v, string w) => v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Bad(w, "a string", v);
    private static string? NullableStr(JsonElement v, string w) => v.ValueKind == JsonValueKind.Null ? null : Str(v, w);
    private static bool Bool(JsonElement v, string w) => v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Bad(w, "true or false", v);
    private static double Num(JsonElement v, string w) => v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(w, "a number", v);
    private static int Int(JsonElement v, string w) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(w, "an integer", v);
    private static int? NullableInt(JsonElement v, string w) => v.ValueKind == JsonValueKind.Null ? null : Int(v, w);

    /// <summary>A list of names, a single name (PEFT accepts "all-linear" or one module as a string), or null.</summary>
    private static IReadOnlyList<string>? StrList(JsonElement v, string w) => v.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => [v.GetString()!],
        JsonValueKind.Array when v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) && v.GetArrayLength() > 0 => [.. v.EnumerateArray().Select(e => e.GetString()!)],
        _ => throw Bad(w, "a module name or a non-empty list of module names", v),
    };

    /// <summary>Writes a config back as snake_case JSON (all keys, for the record of a run).</summary>
    public static string ToJson(KtoConfig c)
    {
        var sb = new StringBuilder();
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("model_name_or_path", c.ModelNameOrPath);
            if (c.RefModelNameOrPath is null) w.WriteNull("ref_model_name_or_path"); else w.WriteString("ref_model_name_or_path", c.RefModelNameOrPath);
            w.WriteString("dataset_path", c.DatasetPath);
            w.WriteString("output_dir", c.OutputDir);
            w.WriteNumber("beta", c.Beta);
            w.WriteNumber("desirable_weight", c.DesirableWeight);
            w.WriteNumber("undesirable_weight", c.UndesirableWeight);
            w.WriteString("loss_type", c.LossType.ToName());
            w.WriteNumber("max_length", c.MaxLength);
            w.WriteNumber("max_prompt_length", c.MaxPromptLength);
            if (c.MaxCompletionLength is int mcl) w.WriteNumber("max_completion_length", mcl); else w.WriteNull("max_completion_length");
            w.WriteBoolean("precompute_ref_log_probs", c.PrecomputeRefLogProbs);
            w.WriteNumber("learning_rate", c.LearningRate);
            w.WriteString("lr_scheduler_type", c.LrSchedulerType);
            w.WriteNumber("warmup_ratio", c.WarmupRatio);
            w.WriteNumber("warmup_steps", c.WarmupSteps);
            w.WriteNumber("weight_decay", c.WeightDecay);
            w.WriteNumber("adam_beta1", c.AdamBeta1);
            w.WriteNumber("adam_beta2", c.AdamBeta2);
            w.WriteNumber("adam_epsilon", c.AdamEpsilon);
            w.WriteNumber("max_grad_norm", c.MaxGradNorm);
            w.WriteNumber("per_device_train_batch_size", c.PerDeviceTrainBatchSize);
            w.WriteNumber("gradient_accumulation_steps", c.GradientAccumulationSteps);
            w.WriteNumber("num_train_epochs", c.NumTrainEpochs);
            w.WriteNumber("max_steps", c.MaxSteps);
            w.WriteNumber("seed", c.Seed);
            if (c.DataSeed is int ds) w.WriteNumber("data_seed", ds); else w.WriteNull("data_seed");
            w.WriteBoolean("shuffle", c.Shuffle);
            w.WriteNumber("logging_steps", c.LoggingSteps);
            w.WriteNumber("save_steps", c.SaveSteps);
            if (c.SaveTotalLimit is int stl) w.WriteNumber("save_total_limit", stl); else w.WriteNull("save_total_limit");
            w.WriteBoolean("overwrite_output_dir", c.OverwriteOutputDir);
            if (c.ResumeFromCheckpoint is null) w.WriteNull("resume_from_checkpoint"); else w.WriteString("resume_from_checkpoint", c.ResumeFromCheckpoint);
            w.WriteString("device", c.Device);
            w.WriteNumber("num_threads", c.NumThreads);
            if (c.ChatTemplate is not null) w.WriteString("chat_template", c.ChatTemplate); // absent when unset, as configs written before the key
            if (c.Bf16) w.WriteBoolean("bf16", true);  // likewise
            if (c.Fp16) w.WriteBoolean("fp16", true);
            if (c.UsePeft || c.AdapterNameOrPath is not null)
            {
                w.WriteBoolean("use_peft", true);
                w.WriteNumber("lora_r", c.LoraR);
                w.WriteNumber("lora_alpha", c.LoraAlpha);
                w.WriteNumber("lora_dropout", c.LoraDropout);
                if (c.LoraTargetModules is { } targets)
                {
                    w.WriteStartArray("lora_target_modules");
                    foreach (string t in targets) w.WriteStringValue(t);
                    w.WriteEndArray();
                }
                w.WriteBoolean("use_rslora", c.UseRslora);
                if (c.LoraModulesToSave is { } save)
                {
                    w.WriteStartArray("lora_modules_to_save");
                    foreach (string m in save) w.WriteStringValue(m);
                    w.WriteEndArray();
                }
                if (c.AdapterNameOrPath is not null) w.WriteString("adapter_name_or_path", c.AdapterNameOrPath);
            }
            if (!c.DisableDropout) w.WriteBoolean("disable_dropout", false); // absent at the default, as configs written before the key
            if (c.FullDeterminism)
            {
                w.WriteBoolean("full_determinism", true);
                w.WriteNumber("determinism_slices", c.DeterminismSlices);
            }
            if (c.BalanceShards) w.WriteBoolean("balance_shards", true); // absent at the default, as configs written before the key
            if (c.EvalDatasetPath is not null) w.WriteString("eval_dataset_path", c.EvalDatasetPath);
            if (c.EvalStrategy != KtoDefaults.EvalStrategy) w.WriteString("eval_strategy", c.EvalStrategy);
            if (c.EvalSteps is int es) w.WriteNumber("eval_steps", es);
            if (c.PerDeviceEvalBatchSize != KtoDefaults.PerDeviceEvalBatchSize) w.WriteNumber("per_device_eval_batch_size", c.PerDeviceEvalBatchSize);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    internal static string Format(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
