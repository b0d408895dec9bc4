using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Model;
using static TorchSharp.torch;

namespace Kto.Domain.Checkpoints;

/// <summary>
/// A Llama-family checkpoint directory as the Hub ships it: <c>config.json</c> (<see cref="DecoderConfig"/>) and the
/// weights in one file or shards (<see cref="ShardedSafetensors"/>), with Hugging Face's names; the <c>model.</c> prefix
/// is optional on load, stale <c>rotary_emb.inv_freq</c> buffers are ignored, and a tied head's stored
/// <c>lm_head.weight</c> must equal the embedding.
/// </summary>
public static class DecoderCheckpoint
{
    private const string Prefix = "model.";

    /// <summary>Reads config.json of <paramref name="dir"/> as a decoder config.</summary>
    /// <exception cref="InvalidDataException">The file is missing or describes a model this decoder does not run (key named).</exception>
    public static DecoderConfig LoadConfig(string dir)
    {
        if (!File.Exists(Path.Combine(dir, ModelCheckpoint.ConfigFile))) throw new InvalidDataException($"{dir}: not a model checkpoint (no {ModelCheckpoint.ConfigFile})");
        return ModelCheckpoint.LoadConfig(dir) as DecoderConfig
            ?? throw new InvalidDataException($"{Path.Combine(dir, ModelCheckpoint.ConfigFile)}: model_type \"gpt2\" is not a Llama-family decoder");
    }

    /// <summary>Loads the model in <paramref name="dir"/> (float32 weights, whatever the stored dtype), shard by shard.</summary>
    /// <exception cref="InvalidDataException">A tensor is missing, of another shape, or unexpected; or the head is inconsistent with tie_word_embeddings.</exception>
    public static DecoderLm Load(string dir, Generator? generator = null)
    {
        var model = new DecoderLm(LoadConfig(dir), generator);
        try
        {
            LoadWeights(model, dir);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>Copies the weights of <paramref name="dir"/> into <paramref name="model"/>, each tensor read once, straight into its parameter.</summary>
    /// <returns>What was read: each tensor's stored dtype, and what was left over.</returns>
    public static ShardedSafetensors.LoadReport LoadWeights(DecoderLm model, string dir)
    {
        var parameters = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        Tensor embedding = parameters.Single(p => p.name == Prefix + "embed_tokens.weight").Item2;
        if (!model.Config.TieWordEmbeddings && !Stores(dir, ShardedSafetensors.LmHead)) // headers only: named before any tensor is read
            throw new InvalidDataException($"{dir}: tensor \"{ShardedSafetensors.LmHead}\" missing, and tie_word_embeddings is false (the head is not the embedding)");
        ShardedSafetensors.LoadReport report = ShardedSafetensors.LoadParameters(dir, parameters, Prefix,
            model.Config.TieWordEmbeddings ? (Prefix + "embed_tokens.weight", embedding) : null);
        if (report.Unused.FirstOrDefault(n => !n.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)) is { } unexpected)
            throw new InvalidDataException($"{dir}: tensor \"{unexpected}\" is not part of a {model.Config.ModelType} model of this config");
        return report;
    }

    /// <summary>Whether the checkpoint's headers list <paramref name="name"/> (without reading any tensor).</summary>
    private static bool Stores(string dir, string name)
    {
        foreach (var (file, mapped) in ShardedSafetensors.Files(dir))
        {
            if (mapped is not null)
            {
                if (mapped.Contains(name)) return true;
                continue;
            }
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (Safetensors.ReadHeader(fs, file).Entries.Any(e => e.Name == name)) return true;
        }
        return false;
    }

    /// <summary>
    /// Writes the weights of <paramref name="model"/> into <paramref name="dir"/> with Hugging Face's names (one file or
    /// shards of at most <paramref name="maxShardBytes"/>, in <paramref name="dtype"/> if given); a tied head is not stored.
    /// config.json is not written (the input checkpoint's is copied by the caller, unknown keys and all).
    /// </summary>
    public static IReadOnlyList<string> SaveWeights(DecoderLm model, string dir, long maxShardBytes = ShardedSafetensors.DefaultMaxShardBytes, ScalarType? dtype = null) =>
        ShardedSafetensors.Save(dir, [.. model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter))], maxShardBytes, dtype);
}
