using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>Checkpoints as the Hub lays them out: BF16/F16 shards with an index, read tensor by tensor; the reader's checks.</summary>
public sealed class ShardedSafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-shards-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static GptLmHeadModel Model(ulong seed)
    {
        using var g = new Generator(seed);
        return new GptLmHeadModel(new GptConfig(257, 32, 32, 2, 4, Tokenizer: "byte"), g);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void AHalfPrecisionCheckpointInShardsLoadsIntoTheLogitsOfItsRoundedWeights(ScalarType stored)
    {
        using GptLmHeadModel model = Model(5);
        using (no_grad())
            foreach (var (_, p) in model.named_parameters()) p.copy_(p.to_type(stored)); // what the half-precision file can hold
        string dir = Path.Combine(_dir, "hub");
        ModelCheckpoint.Save(model, dir); // config.json (one file, F32), then the weights again as shards
        File.Delete(Path.Combine(dir, ShardedSafetensors.SingleFile));
        var named = model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)).ToList();
        long bytes = named.Sum(kv => kv.Value.NumberOfElements * 2);
        IReadOnlyList<string> files = ShardedSafetensors.Save(dir, named, maxShardBytes: bytes / 3, dtype: stored);

        // The layout transformers writes: model-0000i-of-0000N shards, an index with total_size and the weight map.
        var shards = files.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
        Assert.True(shards.Count >= 3, $"{shards.Count} shards");
        Assert.Equal(Enumerable.Range(1, shards.Count).Select(i => $"model-{i:D5}-of-{shards.Count:D5}.safetensors"), shards.Select(Path.GetFileName));
        JsonNode index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, ShardedSafetensors.IndexFile)))!;
        Assert.Equal(bytes, index["metadata"]!["total_size"]!.GetValue<long>());
        Assert.Equal(named.Select(kv => kv.Key).Order(), index["weight_map"]!.AsObject().Select(kv => kv.Key).Order());
        foreach (string shard in shards)
        {
            using var fs = File.OpenRead(shard);
            Safetensors.Header h = Safetensors.ReadHeader(fs, shard);
            Assert.Equal("pt", h.Metadata["format"]);
            Assert.All(h.Entries, e => Assert.Equal(stored, e.Dtype));
        }

        using var loaded = (GptLmHeadModel)ModelCheckpoint.Load(dir);
        using var ids = randint(0, 257, [2, 16], generator: new Generator(9));
        using (no_grad())
        {
            using Tensor a = model.forward(ids), b = loaded.forward(ids);
            Assert.True(a.eq(b).all().item<bool>(), "logits differ");
        }
        Assert.Equal(ScalarType.Float32, loaded.parameters().First().dtype); // float32 master weights from a half-precision file
    }

    [Fact]
    public void TensorsAreWrittenBySizeThenNameAlignedAndReadInChunks()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["b.half"] = randn(3, dtype: ScalarType.BFloat16),
            ["a.float"] = randn(1000),
            ["c.long"] = arange(5, dtype: ScalarType.Int64),
        };
        string path = Path.Combine(_dir, "mixed.safetensors");
        long chunk = Safetensors.ChunkBytes;
        try
        {
            Safetensors.ChunkBytes = 64; // a 4000-byte tensor crosses many chunks each way
            Safetensors.Write(path, tensors);
            byte[] all = File.ReadAllBytes(path);
            Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(all) % 8);
            using var fs = File.OpenRead(path);
            Safetensors.Header h = Safetensors.ReadHeader(fs, path);
            Assert.Equal(["c.long", "a.float", "b.half"], h.Entries.OrderBy(e => e.Begin).Select(e => e.Name));
            Assert.All(h.Entries, e => Assert.Equal(0, e.Begin % Safetensors.SizeOf(e.Dtype)));
            var back = Safetensors.Read(path);
            foreach (var (name, t) in tensors) Assert.True(t.eq(back.Tensors[name]).all().item<bool>(), name);
        }
        finally
        {
            Safetensors.ChunkBytes = chunk;
            foreach (Tensor t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>A file with the given header entries over a data section of <paramref name="dataBytes"/> bytes.</summary>
    private string Handmade(string name, string entries, int dataBytes)
    {
        byte[] json = Encoding.UTF8.GetBytes("{" + entries + "}");
        string path = Path.Combine(_dir, name);
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        fs.Write(len);
        fs.Write(json);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    [Fact]
    public void TheReaderRefusesHolesOverlapsWrongSizesAndTrailingBytesNamingTheTensor()
    {
        static string Fails(string path) => Assert.Throws<InvalidDataException>(() => Safetensors.Read(path)).Message;
        const string A = "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";
        Assert.Contains("tensor \"b\" starts at byte 12 of the data, expected 8 (a hole or an overlap)",
            Fails(Handmade("hole.safetensors", A + ", \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 16]}", 16)));
        Assert.Contains("tensor \"b\" starts at byte 4",
            Fails(Handmade("overlap.safetensors", A + ", \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}", 8)));
        Assert.Contains("tensor \"a\" has byte range [0, 6], which does not match its shape [2] and dtype F32",
            Fails(Handmade("size.safetensors", "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 6]}", 6)));
        Assert.Contains("the file has", Fails(Handmade("trailing.safetensors", A, 9)));
        Assert.Contains("tensor \"a\" ends at byte", Fails(Handmade("short.safetensors", A, 7)));
        Assert.Contains("malformed safetensors header", Fails(Handmade("bad.safetensors", "\"a\": 3", 0)));
    }

    [Fact]
    public void AnIndexThatNamesAMissingShardOrDisagreesWithItIsRefused()
    {
        using GptLmHeadModel model = Model(6);
        string dir = Path.Combine(_dir, "sharded");
        ModelCheckpoint.Save(model, dir, maxShardBytes: 20_000);
        string index = Path.Combine(dir, ShardedSafetensors.IndexFile);
        JsonNode root = JsonNode.Parse(File.ReadAllText(index))!;
        string first = root["weight_map"]!.AsObject().First().Key;

        JsonObject map = root["weight_map"]!.AsObject();
        string firstShard = map[first]!.GetValue<string>();
        string otherShard = map.Select(kv => kv.Value!.GetValue<string>()).First(s => s != firstShard);

        map[first] = "model-00009-of-00009.safetensors";
        File.WriteAllText(index, root.ToJsonString());
        Assert.Contains("shard \"model-00009-of-00009.safetensors\" missing", Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(dir)).Message);

        map[first] = otherShard; // the index and the shards disagree about where the tensor is
        File.WriteAllText(index, root.ToJsonString());
        string message = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(dir)).Message;
        Assert.Contains($"tensor \"{first}\"", message);
        Assert.Contains("this shard", message);
    }
}
