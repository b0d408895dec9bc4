using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Training;

/// <summary>
/// KTO with LoRA (use_peft): only the adapters train (the base stays frozen, no optimizer state for it), the reference
/// is the base with the adapters off, checkpoints are PEFT adapters, and a resume gives the uninterrupted run's bits.
/// </summary>
public sealed class LoraTrainingTests : IDisposable
{
    private readonly TrainingFixture _f = new(arch: "llama");

    public void Dispose() => _f.Dispose();

    private KtoConfig Lora(string name, Func<KtoConfig, KtoConfig>? edit = null) => _f.Config(name, c =>
    {
        c = c with { UsePeft = true, LoraR = 4, LoraAlpha = 8, LoraDropout = 0, LoraTargetModules = [LoraOptions.AllLinear], LearningRate = 1e-2, MaxSteps = 8 };
        return edit is null ? c : edit(c);
    });

    private static Dictionary<string, float[]> Adapter(string checkpoint)
    {
        var contents = Safetensors.Read(Path.Combine(checkpoint, LoraAdapters.WeightsFile));
        var d = contents.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
        foreach (var t in contents.Tensors.Values) t.Dispose();
        return d;
    }

    [Fact]
    public void OnlyTheAdaptersTrainAndTheCheckpointIsAPeftAdapter()
    {
        KtoConfig c = Lora("lora");
        TrainResult r = TrainingFixture.Train(c);
        var metrics = TrainingFixture.Metrics(c);
        Assert.True(metrics[^1]["loss"] < metrics[0]["loss"], "loss did not fall");
        Assert.True(File.Exists(Path.Combine(r.FinalCheckpoint, LoraAdapters.ConfigFile)));
        Assert.False(File.Exists(Path.Combine(r.FinalCheckpoint, ModelCheckpoint.WeightsFile)), "a LoRA checkpoint holds the adapter, not the base");
        Dictionary<string, float[]> adapter = Adapter(r.FinalCheckpoint);
        Assert.All(adapter.Keys, k => Assert.StartsWith("base_model.model.model.layers.0.", k));
        Assert.Equal(7 * 2, adapter.Count); // all-linear: q, k, v, o, gate, up, down × (A, B)
        Assert.Contains(adapter, kv => kv.Key.EndsWith("lora_B.weight", StringComparison.Ordinal) && kv.Value.Any(x => x != 0)); // B moved from 0

        // No optimizer state for the frozen base.
        var optimizer = Safetensors.Read(Path.Combine(r.FinalCheckpoint, TrainingCheckpoint.OptimizerFile));
        Assert.All(optimizer.Tensors.Keys, k => Assert.Contains(".lora_", k));
        foreach (var t in optimizer.Tensors.Values) t.Dispose();

        // The adapter loads onto the untouched base, and with the adapters off the model is the base.
        using CausalLm loaded = ModelCheckpoint.Load(_f.ModelDir);
        LoraOptions options = LoraAdapters.Load(loaded, r.FinalCheckpoint);
        Assert.Equal(4, options.R);
    }

    [Fact]
    public void AResumedLoraRunEndsWithTheUninterruptedRunsBits()
    {
        var straight = TrainingFixture.Train(Lora("straight"));
        using var cancel = new CancellationTokenSource();
        TrainingFixture.Train(Lora("resumed"), cancel.Token, new StopAtStep(4, cancel));
        var second = TrainingFixture.Train(Lora("resumed") with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest });
        Assert.Equal(8, second.GlobalStep);
        var a = Adapter(straight.FinalCheckpoint);
        var b = Adapter(second.FinalCheckpoint);
        foreach (var (name, values) in a) Assert.True(values.AsSpan().SequenceEqual(b[name]), name);
    }

    [Fact]
    public void TheAdaptersOffReferenceEqualsAPrecomputedBaseReferenceAndGpt2TrainsItsAttention()
    {
        var live = TrainingFixture.Train(Lora("live"));
        var pre = TrainingFixture.Train(Lora("pre", c => c with { PrecomputeRefLogProbs = true }));
        var wl = Adapter(live.FinalCheckpoint);
        var wp = Adapter(pre.FinalCheckpoint);
        foreach (var (name, v) in wl)
            for (int i = 0; i < v.Length; i++)
                Assert.True(Math.Abs(v[i] - wp[name][i]) <= 1e-5 + 1e-4 * Math.Abs(v[i]), $"{name}[{i}]: {v[i]} vs {wp[name][i]}");

        using var gpt = new TrainingFixture(arch: "gpt2");
        KtoConfig g = gpt.Config("gpt2-lora", c => c with { UsePeft = true, LoraR = 2, LoraDropout = 0, MaxSteps = 3 });
        TrainResult r = TrainingFixture.Train(g);
        Assert.All(Adapter(r.FinalCheckpoint).Keys, k => Assert.Contains(".attn.c_attn.lora_", k)); // PEFT's GPT-2 default
    }

    [Fact]
    public void LoraSettingsAreCheckedWithTheirLine()
    {
        string path = Path.Combine(_f.Dir, "bad.json");
        File.WriteAllText(path, """{"model_name_or_path": "model", "dataset_path": "data.jsonl", "use_peft": true, "lora_r": 0}""");
        Assert.Contains("\"lora_r\" must be at least 1, got 0", Assert.Throws<ConfigException>(() => KtoConfigReader.Load(path)).Message);
        KtoConfig unknownTarget = Lora("x", c => c with { LoraTargetModules = ["c_attn"] });
        Assert.Contains("\"c_attn\" matches no module", Assert.Throws<ArgumentException>(() => TrainingFixture.Train(unknownTarget)).Message);
    }
}
