using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

public sealed class SafetensorsRoundTripTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void SaveThenLoadGivesIdenticalLogits()
    {
        var config = new GptConfig(257, 32, 32, 2, 4, Tokenizer: "byte");
        using var g = new Generator(11);
        using var model = new GptLmHeadModel(config, g);
        ModelCheckpoint.Save(model, _dir);
        using var loaded = (GptLmHeadModel)ModelCheckpoint.Load(_dir);
        Assert.Equal(config, loaded.Config);

        using var scope = NewDisposeScope();
        using var ids = randint(0, 257, [3, 20], generator: g);
        Tensor a = model.forward(ids), b = loaded.forward(ids);
        Assert.True(a.eq(b).all().item<bool>(), "logits differ after a safetensors round trip");
    }

    [Fact]
    public void EveryDtypeRoundTripsBitForBit()
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn(3, 5),
            ["f64"] = randn(2, 2, dtype: ScalarType.Float64),
            ["f16"] = randn(4, dtype: ScalarType.Float16),
            ["bf16"] = randn(4, dtype: ScalarType.BFloat16),
            ["i64"] = arange(6, dtype: ScalarType.Int64).reshape(2, 3),
            ["scalar"] = tensor(2.5f),
        };
        string path = Path.Combine(_dir, "t.safetensors");
        Safetensors.Write(path, tensors, new Dictionary<string, string> { ["k"] = "v" });
        var back = Safetensors.Read(path);
        Assert.Equal("v", back.Metadata["k"]);
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.dtype, back.Tensors[name].dtype);
            Assert.Equal(t.shape, back.Tensors[name].shape);
            Assert.True(t.eq(back.Tensors[name]).all().item<bool>(), name);
        }
    }

    [Fact]
    public void TruncatedFileIsRejected()
    {
        string path = Path.Combine(_dir, "t.safetensors");
        using (var t = randn(100)) Safetensors.Write(path, new Dictionary<string, Tensor> { ["x"] = t });
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => Safetensors.Read(path));
        Assert.Contains("\"x\"", e.Message);
    }
}
