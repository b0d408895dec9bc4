using Kto.Domain.Checkpoints;
using Kto.Domain.Loss;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Training;

/// <summary>The one-process trainer on the GPT-2 fixture model; the subclasses run every test on a Llama-family model.</summary>
public class TrainerTests : IDisposable
{
    private readonly TrainingFixture _f;

    public TrainerTests() : this("gpt2")
    {
    }

    protected TrainerTests(string arch, Func<KtoConfig, KtoConfig>? configEdit = null, TorchSharp.torch.ScalarType storedDtype = TorchSharp.torch.ScalarType.Float32) =>
        _f = new TrainingFixture(arch: arch, configEdit: configEdit, storedDtype: storedDtype);

    public void Dispose()
    {
        _f.Dispose();
        GC.SuppressFinalize(this);
    }

    private static void AssertSameWeights(string a, string b)
    {
        var wa = TrainingFixture.Weights(a);
        var wb = TrainingFixture.Weights(b);
        Assert.Equal(wa.Keys.Order(), wb.Keys.Order());
        foreach (var (name, values) in wa)
            Assert.True(values.AsSpan().SequenceEqual(wb[name]), $"{name} differs between {a} and {b}");
    }

    [Fact]
    public void TwoRunsWithTheSameSeedEndBitForBitEqual()
    {
        var r1 = TrainingFixture.Train(_f.Config("a"));
        var r2 = TrainingFixture.Train(_f.Config("b"));
        Assert.Equal(r1.GlobalStep, r2.GlobalStep);
        AssertSameWeights(r1.FinalCheckpoint, r2.FinalCheckpoint);

        // And training did change the weights (the comparison above is not of two untouched models).
        var start = TrainingFixture.Weights(_f.ModelDir);
        var end = TrainingFixture.Weights(r1.FinalCheckpoint);
        Assert.Contains(start.Keys, k => !start[k].AsSpan().SequenceEqual(end[k]));
    }

    [Fact]
    public void ADifferentSeedShufflesDifferently()
    {
        var r1 = TrainingFixture.Train(_f.Config("a"));
        var r2 = TrainingFixture.Train(_f.Config("b", c => c with { Seed = 8 }));
        var w1 = TrainingFixture.Weights(r1.FinalCheckpoint);
        var w2 = TrainingFixture.Weights(r2.FinalCheckpoint);
        Assert.Contains(w1.Keys, k => !w1[k].AsSpan().SequenceEqual(w2[k]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ResumeGivesTheSameWeightsAsAnUninterruptedRun(int accumulation)
    {
        const int total = 8;
        KtoConfig Cfg(string name) => _f.Config(name, c => c with { MaxSteps = total, GradientAccumulationSteps = accumulation, WarmupSteps = 2, LrSchedulerType = "cosine" });
        var straight = TrainingFixture.Train(Cfg("straight"));
        Assert.Equal(total, straight.GlobalStep);

        using var cancel = new CancellationTokenSource();
        var first = TrainingFixture.Train(Cfg("resumed"), cancel.Token, new StopAtStep(total / 2, cancel));
        Assert.Equal(total / 2, first.GlobalStep);
        var second = TrainingFixture.Train(Cfg("resumed") with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest });
        Assert.Equal(total, second.GlobalStep);
        AssertSameWeights(straight.FinalCheckpoint, second.FinalCheckpoint);

        // The resumed run's metrics log reads like the uninterrupted one: one line per step, same losses.
        var a = TrainingFixture.Metrics(Cfg("straight"));
        var b = TrainingFixture.Metrics(Cfg("resumed"));
        Assert.Equal(a.Select(m => m["step"]), b.Select(m => m["step"]));
        Assert.Equal(a.Select(m => m["loss"]), b.Select(m => m["loss"]));
    }

    [Fact]
    public void LossFallsAndTrlMetricsAreLogged()
    {
        var c = _f.Config("run", c => c with { NumTrainEpochs = 8, LearningRate = 1e-2 });
        var r = TrainingFixture.Train(c);
        var metrics = TrainingFixture.Metrics(c);
        Assert.Equal(r.GlobalStep, metrics.Count);
        foreach (string key in new[] { "loss", "kl", "kl_raw", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen",
                     "logps/rejected", "logits/chosen", "logits/rejected", "count/chosen", "count/rejected", "grad_norm", "learning_rate", "examples/s", "tokens/s" })
            Assert.Contains(metrics, m => m.ContainsKey(key));
        Assert.Equal(0.5, metrics[0]["loss"]!.Value, 6); // policy = reference at the first step
        double firstQuarter = metrics.Take(metrics.Count / 4).Average(m => m["loss"]!.Value);
        double lastQuarter = metrics.TakeLast(metrics.Count / 4).Average(m => m["loss"]!.Value);
        Assert.True(lastQuarter < firstQuarter - 0.02, $"loss did not fall: {firstQuarter:0.0000} → {lastQuarter:0.0000}");
        Assert.True(metrics.Last()["rewards/margins"] > 0);
    }

    [Fact]
    public void PrecomputedReferenceMatchesTheLiveReference()
    {
        var live = TrainingFixture.Train(_f.Config("live"));
        var observer = new RecordingObserver();
        var pre = TrainingFixture.Train(_f.Config("pre", c => c with { PrecomputeRefLogProbs = true }), observer: observer);
        var wl = TrainingFixture.Weights(live.FinalCheckpoint);
        var wp = TrainingFixture.Weights(pre.FinalCheckpoint);
        foreach (var (name, v) in wl)
            for (int i = 0; i < v.Length; i++)
                Assert.True(Math.Abs(v[i] - wp[name][i]) <= 1e-5 + 1e-4 * Math.Abs(v[i]), $"{name}[{i}]: {v[i]} vs {wp[name][i]}");

        // The cache is keyed and reused by a second run.
        string cacheDir = Path.Combine(_f.Config("pre").OutputDir, "cache");
        Assert.Single(Directory.GetFiles(cacheDir, "ref_logps-*.bin"));
        var again = new RecordingObserver();
        TrainingFixture.Train(_f.Config("pre", c => c with { PrecomputeRefLogProbs = true, OverwriteOutputDir = true }), observer: again);
        Assert.Contains(again.Infos, m => m.Contains("reusing", StringComparison.Ordinal));
    }

    [Fact]
    public void ApoZeroUnpairedTrainsWithoutKl()
    {
        var c = _f.Config("apo", c => c with { LossType = KtoLossType.ApoZeroUnpaired, PerDeviceTrainBatchSize = 1 });
        TrainingFixture.Train(c);
        Assert.All(TrainingFixture.Metrics(c), m => Assert.Equal(0.0, m["kl"]));
    }

    [Fact]
    public void SingleClassDataWarnsAndTrains()
    {
        using var f = new TrainingFixture(examples: 12, desirableShare: 1.0);
        var observer = new RecordingObserver();
        var c = f.Config("one-class");
        var r = TrainingFixture.Train(c, observer: observer);
        Assert.True(r.GlobalStep > 0);
        Assert.NotEmpty(observer.Warnings);
        var metrics = TrainingFixture.Metrics(c);
        Assert.All(metrics, m => Assert.False(m.ContainsKey("rewards/rejected")));
        Assert.All(metrics, m => Assert.True(double.IsFinite(m["loss"]!.Value)));
    }

    [Fact]
    public void ImbalancedDataWithDefaultWeightsGetsTrlsWarning()
    {
        using var f = new TrainingFixture(examples: 40, desirableShare: 0.2, seed: 9);
        var observer = new RecordingObserver();
        TrainingFixture.Train(f.Config("imbalanced", c => c with { MaxSteps = 1 }), observer: observer);
        Assert.Contains(observer.Warnings, w => w.Contains("desirable_weight", StringComparison.Ordinal));
    }

    [Fact]
    public void ACorruptCheckpointIsRefusedOnResume()
    {
        var c = _f.Config("corrupt", c => c with { MaxSteps = 2 });
        var r = TrainingFixture.Train(c);
        string weights = Path.Combine(r.FinalCheckpoint, ModelCheckpoint.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        var e = Assert.Throws<InvalidDataException>(() => TrainingFixture.Train(c with { MaxSteps = 4, ResumeFromCheckpoint = KtoConfigReader.ResumeLatest }));
        Assert.Contains("hash", e.Message);
    }

    [Fact]
    public void SaveTotalLimitKeepsTheNewestCheckpoints()
    {
        var c = _f.Config("limit", c => c with { MaxSteps = 6, SaveSteps = 1, SaveTotalLimit = 2 });
        TrainingFixture.Train(c);
        Assert.Equal([5, 6], TrainingCheckpoint.List(c.OutputDir).Select(x => x.Step));
    }

    [Fact]
    public void AnEarlierRunIsNotOverwrittenByAccident()
    {
        var c = _f.Config("twice", c => c with { MaxSteps = 2 });
        TrainingFixture.Train(c);
        var e = Assert.Throws<InvalidOperationException>(() => TrainingFixture.Train(c));
        Assert.Contains("already holds checkpoints", e.Message);
        Assert.Equal(2, TrainingFixture.Metrics(c).Count); // the first run's log is intact
        var again = TrainingFixture.Train(c with { OverwriteOutputDir = true, MaxSteps = 1 });
        Assert.Equal(1, again.GlobalStep);
        Assert.Equal([1], TrainingCheckpoint.List(c.OutputDir).Select(x => x.Step));
    }

    [Fact]
    public void ASeparateReferenceCheckpointIsUsed()
    {
        // Reference = a differently initialised model: at the first step r ≠ 0, so the loss is not 0.5.
        string refDir = Path.Combine(_f.Dir, "ref");
        using (var g = new TorchSharp.torch.Generator(99))
        using (var m = Kto.Domain.Checkpoints.ModelCheckpoint.LoadConfig(_f.ModelDir).CreateModel(g))
            Kto.Domain.Checkpoints.ModelCheckpoint.Save(m, refDir);
        var same = _f.Config("same", c => c with { MaxSteps = 1 });
        var other = _f.Config("other", c => c with { MaxSteps = 1, RefModelNameOrPath = refDir });
        TrainingFixture.Train(same);
        TrainingFixture.Train(other);
        Assert.Equal(0.5, TrainingFixture.Metrics(same)[0]["loss"]!.Value, 6);
        Assert.NotEqual(0.5, TrainingFixture.Metrics(other)[0]["loss"]!.Value, 3);
    }
}

/// <summary>Every trainer test on a Llama model (tied head, grouped-query attention, llama3 rope scaling).</summary>
public sealed class LlamaTrainerTests() : TrainerTests("llama");

/// <summary>Every trainer test on a Qwen3 model (per-head q/k norms, untied head, grouped-query attention).</summary>
public sealed class Qwen3TrainerTests() : TrainerTests("qwen3");

/// <summary>Every trainer test with bf16 mixed precision (bfloat16 compute, float32 masters) on a Llama model.</summary>
public sealed class Bf16LlamaTrainerTests() : TrainerTests("llama", c => c with { Bf16 = true });

/// <summary>Every trainer test from a Qwen3 checkpoint stored in bfloat16: checkpoints keep that dtype, with float32 master weights beside for an exact resume.</summary>
public sealed class Bf16StoredTrainerTests() : TrainerTests("qwen3", storedDtype: TorchSharp.torch.ScalarType.BFloat16);

/// <summary>Every trainer test with fp16 mixed precision (float16 compute, loss scaling, float32 masters) on GPT-2.</summary>
public sealed class Fp16TrainerTests() : TrainerTests("gpt2", c => c with { Fp16 = true });
