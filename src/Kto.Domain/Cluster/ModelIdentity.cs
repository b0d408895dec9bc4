using Kto.Domain.Checkpoints;

namespace Kto.Domain.Cluster;

/// <summary>
/// What makes two model directories the same model for a run: the SHA-256 of each file that defines its math and its
/// tokens — <c>config.json</c> (architecture, shapes, tokenizer choice), every <c>*.safetensors</c> file and the index of
/// a sharded checkpoint, and <c>tokenizer.json</c> / <c>tokenizer_config.json</c> where present — as one string
/// <c>name=sha256;…</c> in ordinal file order. A node proves at registration that its directories give the run's
/// strings, so a node with another seed's weights, another shape or another tokenizer is refused before it can train.
/// </summary>
public static class ModelIdentity
{
    private static readonly string[] Named = [ModelCheckpoint.ConfigFile, "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"];

    /// <summary>The identity string of the model in <paramref name="dir"/>.</summary>
    /// <exception cref="InvalidDataException">The directory or its config.json is missing.</exception>
    public static string Of(string dir)
    {
        if (!File.Exists(Path.Combine(dir, ModelCheckpoint.ConfigFile))) throw new InvalidDataException($"{dir}: no {ModelCheckpoint.ConfigFile} (not a model directory)");
        var files = Named.Where(f => File.Exists(Path.Combine(dir, f)))
            .Concat(Directory.GetFiles(dir, "*.safetensors").Select(Path.GetFileName).OfType<string>())
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        return string.Join(";", files.Select(f => $"{f}={AtomicFile.Sha256(Path.Combine(dir, f))}"));
    }

    /// <summary>
    /// The identity of the policy a run starts from: the base model's, plus the adapter to continue
    /// (<c>adapter_name_or_path</c>: its adapter_config.json and adapter_model.safetensors, as <c>adapter/…</c>).
    /// </summary>
    public static string OfPolicy(Options.KtoConfig config)
    {
        string identity = Of(config.ModelNameOrPath);
        if (config.AdapterNameOrPath is not { } dir) return identity;
        return identity + string.Concat(new[] { Model.LoraAdapters.ConfigFile, Model.LoraAdapters.WeightsFile }
            .Select(f => $";adapter/{f}={AtomicFile.Sha256(Path.Combine(dir, f))}"));
    }

    /// <summary>The files whose content differs between two identity strings, for people (e.g. <c>model.safetensors (3fa1c2… here, 9b0e47… in the run)</c>).</summary>
    public static string Describe(string run, string here)
    {
        var a = Parse(run);
        var b = Parse(here);
        var lines = a.Keys.Union(b.Keys).Order(StringComparer.Ordinal).Where(f => a.GetValueOrDefault(f) != b.GetValueOrDefault(f)).Select(f =>
            $"{f} ({Short(b.GetValueOrDefault(f))} here, {Short(a.GetValueOrDefault(f))} in the run)");
        return string.Join(", ", lines);
    }

    private static Dictionary<string, string> Parse(string identity) =>
        identity.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    private static string Short(string? sha) => sha is null ? "missing" : sha[..Math.Min(12, sha.Length)] + "…";
}
