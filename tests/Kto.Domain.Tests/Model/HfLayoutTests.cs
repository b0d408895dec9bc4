using System.Buffers.Binary;
using System.Text;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>Checkpoints in Hugging Face's GPT-2 layout, built byte by byte here, load and compute like GPT-2.</summary>
public sealed class HfLayoutTests : IDisposable
{
    private const int Vocab = 7, Width = 4, Heads = 2, Layers = 1, Positions = 5;
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-hf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Dictionary<string, (long[] Shape, double[] Values)> HubStyleTensors()
    {
        var rng = new Random(3);
        double[] R(long n, double scale = 0.5) => Enumerable.Range(0, (int)n).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();
        var d = new Dictionary<string, (long[], double[])>
        {
            ["wte.weight"] = ([Vocab, Width], R(Vocab * Width)),
            ["wpe.weight"] = ([Positions, Width], R(Positions * Width)),
            ["ln_f.weight"] = ([Width], R(Width, 1).Select(v => 1 + v / 4).ToArray()),
            ["ln_f.bias"] = ([Width], R(Width, 0.1)),
        };
        for (int l = 0; l < Layers; l++)
        {
            string p = $"h.{l}.";
            d[p + "ln_1.weight"] = ([Width], R(Width).Select(v => 1 + v).ToArray());
            d[p + "ln_1.bias"] = ([Width], R(Width, 0.1));
            d[p + "ln_2.weight"] = ([Width], R(Width).Select(v => 1 + v).ToArray());
            d[p + "ln_2.bias"] = ([Width], R(Width, 0.1));
            // Conv1D: (in, out) — deliberately non-square so a transpose would not even fit.
            d[p + "attn.c_attn.weight"] = ([Width, 3 * Width], R(Width * 3 * Width));
            d[p + "attn.c_attn.bias"] = ([3 * Width], R(3 * Width, 0.1));
            d[p + "attn.c_proj.weight"] = ([Width, Width], R(Width * Width));
            d[p + "attn.c_proj.bias"] = ([Width], R(Width, 0.1));
            d[p + "mlp.c_fc.weight"] = ([Width, 4 * Width], R(Width * 4 * Width));
            d[p + "mlp.c_fc.bias"] = ([4 * Width], R(4 * Width, 0.1));
            d[p + "mlp.c_proj.weight"] = ([4 * Width, Width], R(4 * Width * Width));
            d[p + "mlp.c_proj.bias"] = ([Width], R(Width, 0.1));
            // Old Hub checkpoints also carry the causal-mask buffer; it must be ignored.
            d[p + "attn.bias"] = ([1, 1, Positions, Positions], new double[Positions * Positions]);
        }
        return d;
    }

    /// <summary>Writes a safetensors file by hand (F32, no helper from the product).</summary>
    private static void WriteByHand(string path, Dictionary<string, (long[] Shape, double[] Values)> tensors, string prefix)
    {
        var header = new StringBuilder("{");
        long offset = 0;
        var names = tensors.Keys.ToList();
        foreach (string n in names)
        {
            long bytes = tensors[n].Values.Length * 4L;
            header.Append($"\"{prefix}{n}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", tensors[n].Shape)}],\"data_offsets\":[{offset},{offset + bytes}]}},");
            offset += bytes;
        }
        header.Append("\"__metadata__\":{\"format\":\"pt\"}}");
        byte[] h = Encoding.UTF8.GetBytes(header.ToString());
        using var fs = File.Create(path);
        Span<byte> b8 = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b8, (ulong)h.Length);
        fs.Write(b8);
        fs.Write(h);
        Span<byte> b4 = stackalloc byte[4];
        foreach (string n in names)
            foreach (double v in tensors[n].Values)
            {
                BinaryPrimitives.WriteSingleLittleEndian(b4, (float)v);
                fs.Write(b4);
            }
    }

    private void WriteConfig(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "config.json"),
            $$"""{"model_type":"gpt2","vocab_size":{{Vocab}},"n_positions":{{Positions}},"n_embd":{{Width}},"n_layer":{{Layers}},"n_head":{{Heads}},"layer_norm_epsilon":1e-5,"n_inner":null,"kto_tokenizer":"byte"}""");
    }

    [Theory]
    [InlineData("")]              // as the "gpt2" repository on the Hub stores it
    [InlineData("transformer.")]  // as GPT2LMHeadModel.save_pretrained writes it
    public void HandBuiltHubCheckpointComputesGpt2Logits(string prefix)
    {
        var tensors = HubStyleTensors();
        string dir = Path.Combine(_dir, "ckpt" + prefix.Length);
        Directory.CreateDirectory(dir);
        WriteConfig(dir);
        WriteByHand(Path.Combine(dir, "model.safetensors"), tensors, prefix);

        using var model = (GptLmHeadModel)ModelCheckpoint.Load(dir);
        int[] ids = [3, 1, 6, 0, 2];
        using var scope = NewDisposeScope();
        float[] got = model.forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length])).data<float>().ToArray();

        var reference = new Gpt2Reference(tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Values), Vocab, Width, Heads, Layers);
        double[,] expected = reference.Logits(ids);
        for (int t = 0; t < ids.Length; t++)
            for (int v = 0; v < Vocab; v++)
                Assert.Equal(expected[t, v], got[t * Vocab + v], 4);

        // The (in, out) weight is held as stored, not transposed.
        var stored = tensors["h.0.attn.c_attn.weight"].Values;
        var param = model.named_parameters().Single(p => p.name == "transformer.h.0.attn.c_attn.weight").parameter;
        Assert.Equal([Width, 3 * Width], param.shape);
        Assert.Equal((float)stored[1], param[0, 1].item<float>());
    }

    [Fact]
    public void SavedCheckpointUsesHfNamesAndOmitsTheTiedHead()
    {
        using var model = new GptLmHeadModel(new GptConfig(Vocab, Positions, Width, Layers, Heads, Tokenizer: "byte"));
        ModelCheckpoint.Save(model, _dir);
        var contents = Safetensors.Read(Path.Combine(_dir, ModelCheckpoint.WeightsFile));
        Assert.Contains("transformer.wte.weight", contents.Tensors.Keys);
        Assert.Contains("transformer.h.0.attn.c_attn.weight", contents.Tensors.Keys);
        Assert.Equal([Width, 3 * Width], contents.Tensors["transformer.h.0.attn.c_attn.weight"].shape);
        Assert.DoesNotContain("lm_head.weight", contents.Tensors.Keys);
        Assert.Equal("pt", contents.Metadata["format"]);
        string config = File.ReadAllText(Path.Combine(_dir, ModelCheckpoint.ConfigFile));
        Assert.Contains("\"tie_word_embeddings\": true", config);
        Assert.Contains("\"kto_tokenizer\": \"byte\"", config);
        foreach (var t in contents.Tensors.Values) t.Dispose();
    }

    [Fact]
    public void MissingOrMisshapenTensorsAreNamed()
    {
        var tensors = HubStyleTensors();
        tensors.Remove("h.0.mlp.c_fc.bias");
        WriteConfig(_dir);
        WriteByHand(Path.Combine(_dir, "model.safetensors"), tensors, "");
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(_dir));
        Assert.Contains("transformer.h.0.mlp.c_fc.bias", e.Message);

        tensors = HubStyleTensors();
        tensors["h.0.attn.c_proj.weight"] = ([Width, Width + 1], new double[Width * (Width + 1)]);
        WriteByHand(Path.Combine(_dir, "model.safetensors"), tensors, "");
        e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(_dir));
        Assert.Contains($"tensor \"h.0.attn.c_proj.weight\" has shape [{Width}, {Width + 1}]", e.Message); // named as the file names it
    }
}
