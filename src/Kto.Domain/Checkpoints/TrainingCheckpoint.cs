using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Checkpoints;

/// <summary>What a training checkpoint records besides tensors.</summary>
/// <param name="GlobalStep">Optimizer steps completed.</param>
/// <param name="DatasetFingerprint">The data it was trained on (resume refuses other data).</param>
/// <param name="TotalSteps">Planned steps of the run.</param>
/// <param name="Epoch">Passes over the data completed, fractional (for people; the data position follows from
/// <paramref name="GlobalStep"/> because the batch plan is a pure function).</param>
public sealed record TrainerState(int GlobalStep, string DatasetFingerprint, int TotalSteps, double Epoch = 0);

/// <summary>
/// A resumable checkpoint: a directory <c>checkpoint-STEP</c> holding the model (HF layout, loadable on its own),
/// <c>optimizer.safetensors</c> (AdamW moments) and <c>trainer_state.json</c> (step, data fingerprint and the
/// SHA-256 of every file). It is written into a temporary directory, each file flushed to disk, then renamed into
/// place, so a crash leaves either the whole checkpoint or none; hashes are verified on load.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>Directory name prefix (Hugging Face's).</summary>
    public const string Prefix = "checkpoint-";

    /// <summary>The float32 weights of a run whose model is stored in a half dtype (its source's): what a resume loads.</summary>
    public const string MasterWeightsFile = "master_weights.safetensors";

    /// <summary>Whether checkpoint <paramref name="dir"/> records exactly <paramref name="files"/> (name → SHA-256) and its files still match.</summary>
    private static bool SameFiles(string dir, JsonObject files)
    {
        try
        {
            ReadVerified(dir);
            JsonNode? recorded = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, StateFile)))?["files"];
            return recorded is not null && JsonNode.DeepEquals(recorded, files);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or JsonException or KeyNotFoundException or NullReferenceException)
        {
            return false;
        }
    }

    /// <summary>File of the optimizer state.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>File of the step and hashes; written last.</summary>
    public const string StateFile = "trainer_state.json";

    /// <summary>
    /// Writes the checkpoint of <paramref name="state"/> under <paramref name="outputDir"/>; returns its path. If writing
    /// fails (a full disk), its temporary directory is removed before the error is rethrown; temporary directories
    /// left by processes that died while writing are removed first.
    /// </summary>
    /// <exception cref="IOException">The checkpoint could not be written; no part of it is left behind.</exception>
    /// <param name="outputDir">The run's output_dir.</param>
    /// <param name="model">The weights (float32; a mixed-precision run's masters).</param>
    /// <param name="optimizer">Its optimizer.</param>
    /// <param name="state">Step, data fingerprint and schedule length.</param>
    /// <param name="precision">A <c>bf16</c>/<c>fp16</c> run's mixed precision: its loss scaler's state is kept with the optimizer's.</param>
    /// <param name="exact">A full_determinism run's exact sums: their grid is kept with the optimizer's state.</param>
    public static string Save(string outputDir, CausalLm model, AdamW optimizer, TrainerState state, Training.MixedPrecision? precision = null, Cluster.ExactSum? exact = null)
    {
        string final = Path.Combine(outputDir, Prefix + state.GlobalStep.ToString(CultureInfo.InvariantCulture));
        string temp = Path.Combine(outputDir, $".{Prefix}{state.GlobalStep}.tmp-{TempOwner}-{Environment.ProcessId}");
        RemoveAbandonedTemporaries(outputDir);
        try
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            Directory.CreateDirectory(temp);
            if (model.Lora is { } lora)
            {
                // A LoRA run's checkpoint is its adapter in PEFT's format (the base is the run's model_name_or_path).
                LoraAdapters.Save(model, temp, lora, model.SourceDir);
                ModelCheckpoint.CopyTokenizerFiles(model.SourceDir, temp);
            }
            else ModelCheckpoint.Save(model, temp); // in the dtype the run started from, loadable by transformers as such
            if (model.Lora is null && model.SourceDtype != ScalarType.Float32) // …and the float32 weights, for an exact resume
                AtomicFile.Write(Path.Combine(temp, MasterWeightsFile), s => Safetensors.Write(s,
                    model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach(), StringComparer.Ordinal)));
            var metadata = new Dictionary<string, string>(precision?.ScalerState() ?? new Dictionary<string, string>())
            {
                ["step_count"] = optimizer.StepCount.ToString(CultureInfo.InvariantCulture),
            };
            foreach (var (k, v) in exact?.State() ?? new Dictionary<string, string>()) metadata[k] = v;
            AtomicFile.Write(Path.Combine(temp, OptimizerFile), s => Safetensors.Write(s, optimizer.StateTensors(), metadata));
            var files = new JsonObject();
            foreach (string f in Directory.GetFiles(temp).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal))
                files[f] = AtomicFile.Sha256(Path.Combine(temp, f)); // config, weights (one file or shards and index), optimizer
            var json = new JsonObject
            {
                ["global_step"] = state.GlobalStep,
                ["total_steps"] = state.TotalSteps,
                ["epoch"] = state.Epoch,
                ["dataset_fingerprint"] = state.DatasetFingerprint,
                ["files"] = files,
            };
            AtomicFile.WriteText(Path.Combine(temp, StateFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (Directory.Exists(final))
            {
                // Another replica already wrote this step with the same bits (replicas are identical): it is kept rather
                // than deleted and replaced, which would leave a moment with no checkpoint (or half of one) for a
                // reader. One that differs in any file (an earlier run's, an incomplete one) is replaced.
                if (SameFiles(final, files))
                {
                    Directory.Delete(temp, recursive: true);
                    return final;
                }
                // Renamed away first (atomic), so a reader never finds a checkpoint directory half deleted.
                string old = Path.Combine(outputDir, $".{Prefix}{state.GlobalStep}.replaced.tmp-{TempOwner}-{Environment.ProcessId}");
                if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
                Directory.Move(final, old);
                Directory.Move(temp, final);
                TryDelete(old);
                return final;
            }
            Directory.Move(temp, final);
            return final;
        }
        catch (Exception) when (Directory.Exists(temp))
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>This machine's part of a temporary directory's name (an output_dir may be shared by several hosts).</summary>
    private static string TempOwner { get; } = new string([.. Environment.MachineName.Select(c => char.IsLetterOrDigit(c) ? c : '_')]);

    /// <summary>
    /// Removes <c>.checkpoint-STEP.tmp-MACHINE-PID</c> directories this machine's processes left when they died while
    /// writing. Directories of live processes, and of other machines (a shared output_dir), are kept.
    /// </summary>
    public static void RemoveAbandonedTemporaries(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (string dir in Directory.GetDirectories(outputDir, $".{Prefix}*.tmp-{TempOwner}-*"))
        {
            string name = Path.GetFileName(dir);
            if (!int.TryParse(name.AsSpan(name.LastIndexOf('-') + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (pid == Environment.ProcessId || ProcessRuns(pid)) continue;
            TryDelete(dir);
        }
    }

    private static bool ProcessRuns(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // removed by the next save's clean-up
        }
    }

    /// <summary>The newest complete checkpoint in <paramref name="outputDir"/>, or null.</summary>
    public static string? Latest(string outputDir) => List(outputDir).LastOrDefault().Path;

    /// <summary>Complete checkpoints in <paramref name="outputDir"/>, oldest first.</summary>
    public static IReadOnlyList<(int Step, string Path)> List(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return [];
        return Directory.GetDirectories(outputDir, Prefix + "*")
            .Select(d => (ok: int.TryParse(Path.GetFileName(d).AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int s), s, d))
            .Where(x => x.ok && File.Exists(Path.Combine(x.d, StateFile)))
            .OrderBy(x => x.s)
            .Select(x => (x.s, x.d))
            .ToList();
    }

    /// <summary>Deletes the oldest checkpoints so at most <paramref name="keep"/> remain.</summary>
    public static void Prune(string outputDir, int keep)
    {
        var all = List(outputDir);
        for (int i = 0; i < all.Count - keep; i++) Directory.Delete(all[i].Path, recursive: true);
    }

    /// <summary>Reads the state of a checkpoint after verifying every file's hash.</summary>
    /// <exception cref="InvalidDataException">A file is missing or its content does not match the recorded hash.</exception>
    public static TrainerState ReadVerified(string dir)
    {
        string statePath = Path.Combine(dir, StateFile);
        if (!File.Exists(statePath)) throw new InvalidDataException($"{dir}: not a training checkpoint (no {StateFile})");
        JsonNode root = JsonNode.Parse(File.ReadAllText(statePath)) ?? throw new InvalidDataException($"{statePath}: empty");
        foreach (var (file, hash) in root["files"]!.AsObject())
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path)) throw new InvalidDataException($"{dir}: {file} missing");
            string actual = AtomicFile.Sha256(path);
            if (actual != hash!.GetValue<string>())
                throw new InvalidDataException($"{path}: content hash {actual[..12]}… does not match the recorded {hash.GetValue<string>()[..12]}… (corrupt or modified checkpoint)");
        }
        return new TrainerState(root["global_step"]!.GetValue<int>(), root["dataset_fingerprint"]!.GetValue<string>(), root["total_steps"]!.GetValue<int>(),
            root["epoch"]?.GetValue<double>() ?? 0);
    }

    /// <summary>Loads weights and optimizer state of a verified checkpoint into <paramref name="model"/> and <paramref name="optimizer"/>.</summary>
    /// <param name="dir">The checkpoint.</param>
    /// <param name="model">Receives the weights.</param>
    /// <param name="optimizer">Receives the optimizer state.</param>
    /// <param name="precision">A <c>bf16</c>/<c>fp16</c> run's mixed precision: its half copy takes the restored weights, its loss scaler the saved state.</param>
    /// <param name="exact">A full_determinism run's exact sums: they take the saved grid.</param>
    public static TrainerState Restore(string dir, CausalLm model, AdamW optimizer, Training.MixedPrecision? precision = null, Cluster.ExactSum? exact = null)
    {
        TrainerState state = ReadVerified(dir);
        bool adapter = File.Exists(Path.Combine(dir, LoraAdapters.WeightsFile));
        if (adapter != model.Lora is not null)
            throw new InvalidDataException(adapter ? $"{dir}: holds a LoRA adapter, but this run trains the whole model (use_peft is false)"
                : $"{dir}: holds a whole model, but this run trains LoRA adapters (use_peft)");
        if (!adapter)
        {
            LmConfig saved = ModelCheckpoint.LoadConfig(dir);
            if (saved.Architecture() != model.LmConfig.Architecture()) throw new InvalidDataException($"{dir}: model config {saved} differs from the run's {model.LmConfig}");
        }
        string masters = Path.Combine(dir, MasterWeightsFile);
        if (File.Exists(masters))
        {
            Safetensors.Contents stored = Safetensors.Read(masters);
            try
            {
                using var noGrad = no_grad();
                foreach (var (name, p) in model.named_parameters())
                {
                    if (!stored.Tensors.TryGetValue(name, out Tensor? t) || !t.shape.SequenceEqual(p.shape))
                        throw new InvalidDataException($"{masters}: tensor \"{name}\" missing or of another shape");
                    p.copy_(t);
                }
            }
            finally
            {
                foreach (Tensor t in stored.Tensors.Values) t.Dispose();
            }
        }
        else if (adapter) LoraAdapters.LoadWeights(model, dir);
        else ModelCheckpoint.LoadWeights(model, dir);
        Safetensors.Contents opt = Safetensors.Read(Path.Combine(dir, OptimizerFile));
        try
        {
            optimizer.LoadState(long.Parse(opt.Metadata["step_count"], CultureInfo.InvariantCulture), opt.Tensors);
            precision?.RestoreScalerState(opt.Metadata);
            exact?.RestoreState(opt.Metadata);
            precision?.MastersToCompute();
        }
        finally
        {
            foreach (Tensor t in opt.Tensors.Values) t.Dispose();
        }
        return state;
    }
}
