using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Kto.Domain.Checkpoints;

/// <summary>
/// Model weights as the Hugging Face Hub lays them out: one <c>model.safetensors</c>, or shards
/// <c>model-00001-of-0000N.safetensors</c> listed by <c>model.safetensors.index.json</c>
/// (<c>{"metadata": {"total_size": bytes}, "weight_map": {tensor: shard}}</c>, <c>total_size</c> being the sum of the
/// tensors' byte sizes). Reading goes shard by shard and tensor by tensor straight into the destination parameters, so
/// loading holds the model plus at most one tensor in its stored dtype — never a second copy of the model.
/// </summary>
public static class ShardedSafetensors
{
    /// <summary>The single-file name.</summary>
    public const string SingleFile = "model.safetensors";

    /// <summary>The index of a sharded checkpoint.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>transformers 4.x's <c>max_shard_size</c> default ("5GB", decimal).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>What <c>transformers</c> requires in each file's <c>__metadata__</c>.</summary>
    public static readonly IReadOnlyDictionary<string, string> PtMetadata = new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>The weight files of the checkpoint in <paramref name="dir"/>, in shard order, each with the tensors the index maps to it.</summary>
    /// <exception cref="InvalidDataException">Neither file exists, or the index is malformed or names a missing shard.</exception>
    public static IReadOnlyList<(string File, IReadOnlySet<string>? Tensors)> Files(string dir)
    {
        string index = Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            JsonNode? root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(index));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{index}: malformed JSON: {e.Message}", e);
            }
            if (root?["weight_map"] is not JsonObject map || map.Count == 0) throw new InvalidDataException($"{index}: \"weight_map\" missing or empty");
            var byShard = new SortedDictionary<string, HashSet<string>>(StringComparer.Ordinal);
            foreach (var (tensor, file) in map)
            {
                string shard = file?.GetValue<string>() ?? throw new InvalidDataException($"{index}: \"weight_map\".\"{tensor}\" is not a file name");
                if (shard.Contains('/') || shard.Contains('\\')) throw new InvalidDataException($"{index}: \"weight_map\".\"{tensor}\" names \"{shard}\" outside the checkpoint directory");
                if (!byShard.TryGetValue(shard, out var set)) byShard[shard] = set = new HashSet<string>(StringComparer.Ordinal);
                set.Add(tensor);
            }
            foreach (string shard in byShard.Keys)
                if (!File.Exists(Path.Combine(dir, shard))) throw new InvalidDataException($"{index}: shard \"{shard}\" missing");
            return [.. byShard.Select(kv => (Path.Combine(dir, kv.Key), (IReadOnlySet<string>?)kv.Value))];
        }
        string single = Path.Combine(dir, SingleFile);
        if (File.Exists(single)) return [(single, null)];
        throw new InvalidDataException($"{dir}: no {SingleFile} and no {IndexFile}");
    }

    /// <summary>
    /// Reads every tensor of the checkpoint in <paramref name="dir"/> into <paramref name="destinations"/> (by stored
    /// name; each converted to the destination's dtype), shard by shard. Returns the stored dtype of each tensor read.
    /// Names stored but not wanted, and wanted but not stored, are returned for the caller to judge.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is malformed, a shape differs, or the index and a shard disagree.</exception>
    public static LoadReport LoadInto(string dir, IReadOnlyDictionary<string, Tensor> destinations)
    {
        var found = new Dictionary<string, ScalarType>(StringComparer.Ordinal);
        var extra = new List<string>();
        foreach (var (file, mapped) in Files(dir))
        {
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            Safetensors.Header header = Safetensors.ReadHeader(fs, file);
            foreach (Safetensors.Entry e in header.Entries)
            {
                if (mapped is not null && !mapped.Contains(e.Name))
                    throw new InvalidDataException($"{file}: tensor \"{e.Name}\" is not mapped to this shard by {IndexFile}");
                if (!found.TryAdd(e.Name, e.Dtype)) throw new InvalidDataException($"{file}: tensor \"{e.Name}\" is stored twice");
                if (destinations.TryGetValue(e.Name, out Tensor? into)) Safetensors.ReadInto(fs, header, e, into, file);
                else extra.Add(e.Name);
            }
            if (mapped is not null && mapped.FirstOrDefault(t => !found.ContainsKey(t)) is { } absent)
                throw new InvalidDataException($"{file}: tensor \"{absent}\" is mapped to this shard by {IndexFile} but not stored in it");
        }
        return new LoadReport(found, extra, [.. destinations.Keys.Where(k => !found.ContainsKey(k)).Order(StringComparer.Ordinal)]);
    }

    /// <summary>
    /// Reads a model's parameters (Hugging Face names) from the checkpoint in <paramref name="dir"/>: each name may be
    /// stored with or without <paramref name="optionalPrefix"/> (<c>transformer.</c>, <c>model.</c>); every parameter
    /// must be stored. With <paramref name="tiedEmbedding"/> (the head is the embedding and not a parameter), a stored
    /// <c>lm_head.weight</c> is read aside and must equal it.
    /// </summary>
    /// <exception cref="InvalidDataException">A parameter is missing or of another shape, a file is malformed, or a stored
    /// tied head differs from the embedding.</exception>
    public static LoadReport LoadParameters(string dir, IReadOnlyList<(string Name, Tensor Parameter)> parameters, string optionalPrefix, (string Name, Tensor Weight)? tiedEmbedding)
    {
        var destinations = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            destinations[name] = p;
            if (name.StartsWith(optionalPrefix, StringComparison.Ordinal)) destinations[name[optionalPrefix.Length..]] = p;
        }
        using Tensor? storedHead = tiedEmbedding is { } tied ? empty(tied.Weight.shape, tied.Weight.dtype) : null;
        if (storedHead is not null) destinations[LmHead] = storedHead;
        using var noGrad = no_grad();
        LoadReport report = LoadInto(dir, destinations);
        foreach (var (name, _) in parameters)
            if (!report.StoredDtypes.ContainsKey(name) && !(name.StartsWith(optionalPrefix, StringComparison.Ordinal) && report.StoredDtypes.ContainsKey(name[optionalPrefix.Length..])))
                throw new InvalidDataException($"{dir}: tensor \"{name}\" missing");
        if (tiedEmbedding is { } t && report.StoredDtypes.ContainsKey(LmHead) && !storedHead!.allclose(t.Weight, 0, 0))
            throw new InvalidDataException($"{dir}: {LmHead} differs from {t.Name}, but this model ties them");
        return report;
    }

    /// <summary>The output head's name.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>What <see cref="LoadInto"/> read.</summary>
    /// <param name="StoredDtypes">Each tensor read, with its stored dtype.</param>
    /// <param name="Unused">Stored tensors no destination wanted.</param>
    /// <param name="Missing">Destinations the checkpoint does not store.</param>
    public sealed record LoadReport(IReadOnlyDictionary<string, ScalarType> StoredDtypes, IReadOnlyList<string> Unused, IReadOnlyList<string> Missing);

    /// <summary>
    /// Writes <paramref name="tensors"/> into <paramref name="dir"/> (which must hold no other weight files) as
    /// <c>model.safetensors</c>, or, when they exceed <paramref name="maxShardBytes"/>, as shards plus the index:
    /// tensors in the given order, a new shard whenever the next tensor would pass the limit (a larger tensor gets a
    /// shard of its own), as transformers splits. Each file is written atomically. Tensors are stored in
    /// <paramref name="dtype"/> if given, else in their own.
    /// </summary>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> Save(string dir, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, long maxShardBytes = DefaultMaxShardBytes, ScalarType? dtype = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        Directory.CreateDirectory(dir);
        long Size(Tensor t) => t.NumberOfElements * Safetensors.SizeOf(dtype ?? t.dtype);
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var kv in tensors)
        {
            long size = Size(kv.Value);
            total += size;
            if (shards[^1].Count > 0 && current + size > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(kv);
            current += size;
        }
        foreach (string stale in Directory.GetFiles(dir, "model-*-of-*.safetensors").Append(Path.Combine(dir, IndexFile)).Append(Path.Combine(dir, SingleFile)))
            if (File.Exists(stale)) File.Delete(stale);

        var written = new List<string>();
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = shards.Count == 1 ? SingleFile : string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            var converted = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var (tensorName, t) in shards[i])
                {
                    converted[tensorName] = dtype is { } d && d != t.dtype ? t.detach().to_type(d) : t.detach();
                    weightMap[tensorName] = name;
                }
                string path = Path.Combine(dir, name);
                AtomicFile.Write(path, s => Safetensors.Write(s, converted, PtMetadata));
                written.Add(path);
            }
            finally
            {
                foreach (Tensor t in converted.Values) t.Dispose();
            }
        }
        if (shards.Count > 1)
        {
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
            string path = Path.Combine(dir, IndexFile);
            AtomicFile.WriteText(path, index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            written.Add(path);
        }
        return written;
    }
}
