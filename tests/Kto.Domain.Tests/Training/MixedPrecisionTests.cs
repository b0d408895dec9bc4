using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Training;

/// <summary>bf16/fp16 with float32 masters: the half copy, the gradient hand-over, fp16's dynamic loss scale, and what a run stores.</summary>
public sealed class MixedPrecisionTests : IDisposable
{
    private readonly TrainingFixture _f = new(arch: "llama");

    public void Dispose() => _f.Dispose();

    private static CausalLm Model()
    {
        using var g = new Generator(1);
        return TrainingFixture.ModelConfig("llama").CreateModel(g);
    }

    [Fact]
    public void TheComputeCopyIsHalfAndMastersGetUnscaledFloat32Gradients()
    {
        using CausalLm masters = Model();
        using MixedPrecision mp = MixedPrecision.For(new KtoConfig { Fp16 = true }, masters)!;
        Assert.All(mp.Compute.parameters(), p => Assert.Equal(ScalarType.Float16, p.dtype));
        Assert.All(masters.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.Equal(MixedPrecision.InitialLossScale, mp.LossScale);

        using var ids = tensor(new long[] { 1, 2, 3, 4 }).unsqueeze(0);
        (mp.Compute.forward(ids).to_type(ScalarType.Float32).mean() * mp.LossScale).backward();
        Assert.All(mp.Compute.parameters(), p => Assert.True(p.grad!.isfinite().all().item<bool>(), "scaled fp16 gradients overflowed"));
        var half = mp.Compute.parameters().Select(p => p.grad!.to_type(ScalarType.Float32) / mp.LossScale).ToList();
        mp.GradsToMasters();
        foreach (var (master, expected) in masters.parameters().Zip(half))
        {
            Assert.Equal(ScalarType.Float32, master.grad!.dtype);
            Assert.True(master.grad!.allclose(expected), "master gradient ≠ compute gradient / scale");
        }
        Assert.All(mp.Compute.parameters(), p => Assert.Equal(0.0, p.grad!.to_type(ScalarType.Float64).abs().sum().item<double>()));
    }

    [Fact]
    public void Fp16SkipsAStepWhoseGradientsOverflowAndHalvesTheScaleThenGrowsItBack()
    {
        using CausalLm masters = Model();
        using MixedPrecision mp = MixedPrecision.For(new KtoConfig { Fp16 = true }, masters)!;
        foreach (var p in masters.parameters()) p.grad = zeros_like(p);
        Assert.True(mp.FinishStep());
        using (no_grad()) masters.parameters().First().grad!.fill_(float.PositiveInfinity);
        Assert.False(mp.FinishStep());
        Assert.Equal(MixedPrecision.InitialLossScale / 2, mp.LossScale);
        using (no_grad()) masters.parameters().First().grad!.fill_(float.NaN);
        Assert.False(mp.FinishStep());
        Assert.Equal(MixedPrecision.InitialLossScale / 4, mp.LossScale);

        using (no_grad()) masters.parameters().First().grad!.zero_();
        for (int i = 0; i < MixedPrecision.GrowthInterval - 1; i++) Assert.True(mp.FinishStep());
        Assert.Equal(MixedPrecision.InitialLossScale / 4, mp.LossScale);
        Assert.True(mp.FinishStep());
        Assert.Equal(MixedPrecision.InitialLossScale / 2, mp.LossScale); // doubled after 2000 clean steps

        IReadOnlyDictionary<string, string> state = mp.ScalerState();
        using MixedPrecision other = MixedPrecision.For(new KtoConfig { Fp16 = true }, masters)!;
        other.RestoreScalerState(state);
        Assert.Equal(mp.LossScale, other.LossScale);
    }

    [Fact]
    public void Bf16NeverSkipsAndFloat32RunsHaveNone()
    {
        using CausalLm masters = Model();
        Assert.Null(MixedPrecision.For(new KtoConfig(), masters));
        using MixedPrecision mp = MixedPrecision.For(new KtoConfig { Bf16 = true }, masters)!;
        Assert.Equal(1, mp.LossScale);
        foreach (var p in masters.parameters()) p.grad = full_like(p, float.NaN);
        Assert.True(mp.FinishStep());
        Assert.Empty(mp.ScalerState());
    }

    [Fact]
    public void ACheckpointKeepsItsSourcesDtypeWithFloat32MastersBeside()
    {
        using var f = new TrainingFixture(arch: "qwen3", storedDtype: ScalarType.BFloat16);
        TrainResult r = TrainingFixture.Train(f.Config("run", c => c with { MaxSteps = 2 }));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(r.FinalCheckpoint, "config.json")))!;
        Assert.Equal("bfloat16", config["torch_dtype"]!.GetValue<string>());
        using (var stream = File.OpenRead(Path.Combine(r.FinalCheckpoint, Kto.Domain.Checkpoints.ModelCheckpoint.WeightsFile)))
            Assert.All(Kto.Domain.Checkpoints.Safetensors.ReadHeader(stream, "model.safetensors").Entries, e => Assert.Equal(ScalarType.BFloat16, e.Dtype));
        using (var stream = File.OpenRead(Path.Combine(r.FinalCheckpoint, Kto.Domain.Checkpoints.TrainingCheckpoint.MasterWeightsFile)))
            Assert.All(Kto.Domain.Checkpoints.Safetensors.ReadHeader(stream, "masters").Entries, e => Assert.Equal(ScalarType.Float32, e.Dtype));
        // The stored model is the masters rounded to bfloat16.
        using CausalLm saved = Kto.Domain.Checkpoints.ModelCheckpoint.Load(r.FinalCheckpoint);
        Assert.Equal(ScalarType.BFloat16, saved.SourceDtype);
        var masters = TrainingFixture.Weights(r.FinalCheckpoint);
        foreach (var (name, p) in saved.named_parameters())
            Assert.True(p.allclose(tensor(masters[name]).reshape(p.shape).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32), 0, 0), name);
    }

    [Fact]
    public void ABf16RunTrainsInBfloat16AndStoresFloat32Weights()
    {
        TrainResult fp32 = TrainingFixture.Train(_f.Config("fp32"));
        TrainResult bf16 = TrainingFixture.Train(_f.Config("bf16", c => c with { Bf16 = true }));
        var a = TrainingFixture.Weights(fp32.FinalCheckpoint);
        var b = TrainingFixture.Weights(bf16.FinalCheckpoint);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        double rel = Kto.Domain.Checkpoints.WeightDistance.RelativeL2(a, b);
        Assert.True(rel > 0, "bf16 gave the float32 weights bit for bit: the half copy was not used");
        Assert.True(rel < 1e-2, $"bf16 weights far from float32's: relative L2 {rel:E2}");
        // Master weights are float32: they are not all representable in bfloat16.
        Assert.Contains(b.Values.SelectMany(v => v), x => (float)(BitConverter.SingleToInt32Bits(x) & 0xFFFF) != 0);
    }
}
