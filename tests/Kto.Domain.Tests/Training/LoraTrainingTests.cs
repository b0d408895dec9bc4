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

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]  // lora_dropout acting: the masks of the resumed steps are the uninterrupted run's
    [InlineData(false, true)]  // bf16 base, float32 adapters
    [InlineData(false, false, true)]  // fp16 base, float32 adapters, dynamic loss scaling (its state is resumed too)
    public void AResumedLoraRunEndsWithTheUninterruptedRunsBits(bool dropout, bool bf16, bool fp16 = false)
    {
        KtoConfig Edit(KtoConfig c) => c with { LoraDropout = dropout ? 0.3 : 0, DisableDropout = !dropout, Bf16 = bf16, Fp16 = fp16 };
        var straight = TrainingFixture.Train(Lora("straight", Edit));
        using var cancel = new CancellationTokenSource();
        TrainingFixture.Train(Lora("resumed", Edit), cancel.Token, new StopAtStep(4, cancel));
        var second = TrainingFixture.Train(Lora("resumed", Edit) with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest });
        Assert.Equal(8, second.GlobalStep);
        var a = Adapter(straight.FinalCheckpoint);
        var b = Adapter(second.FinalCheckpoint);
        foreach (var (name, values) in a) Assert.True(values.AsSpan().SequenceEqual(b[name]), name);
        Assert.Contains(a, kv => kv.Key.EndsWith("lora_B.weight", StringComparison.Ordinal) && kv.Value.Any(x => x != 0)); // it trained
        if (fp16)
        {
            var optimizer = Safetensors.Read(Path.Combine(second.FinalCheckpoint, TrainingCheckpoint.OptimizerFile));
            Assert.True(optimizer.Metadata.ContainsKey("loss_scale"), "fp16's loss scale is kept with the adapters' optimizer state");
            foreach (var t in optimizer.Tensors.Values) t.Dispose();
        }
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

    [Fact]
    public void DropoutActsOnlyWithDisableDropoutFalseAndItsMasksAreSeeded()
    {
        var none = Adapter(TrainingFixture.Train(Lora("none")).FinalCheckpoint);
        var disabled = Adapter(TrainingFixture.Train(Lora("disabled", c => c with { LoraDropout = 0.3 })).FinalCheckpoint); // disable_dropout: TRL's default true
        var on = Adapter(TrainingFixture.Train(Lora("on", c => c with { LoraDropout = 0.3, DisableDropout = false })).FinalCheckpoint);
        var again = Adapter(TrainingFixture.Train(Lora("again", c => c with { LoraDropout = 0.3, DisableDropout = false })).FinalCheckpoint);
        var otherSeed = Adapter(TrainingFixture.Train(Lora("seed", c => c with { LoraDropout = 0.3, DisableDropout = false, Seed = 8 })).FinalCheckpoint);
        foreach (var (name, v) in none)
        {
            Assert.True(v.AsSpan().SequenceEqual(disabled[name]), $"{name}: disable_dropout did not turn lora_dropout off");
            Assert.True(on[name].AsSpan().SequenceEqual(again[name]), $"{name}: dropout is not reproducible");
        }
        Assert.Contains(none, kv => !kv.Value.AsSpan().SequenceEqual(on[kv.Key]));      // dropout acted
        Assert.Contains(on, kv => !kv.Value.AsSpan().SequenceEqual(otherSeed[kv.Key])); // and follows the seed
    }

    [Fact]
    public void ModulesToSaveTrainInFullAreSavedAndTheReferenceKeepsTheirOriginals()
    {
        using var qwen = new TrainingFixture(arch: "qwen3"); // untied output head
        KtoConfig Save(string name, bool precompute) => qwen.Config(name, c => c with
        {
            UsePeft = true, LoraR = 4, LoraAlpha = 8, LoraDropout = 0, LoraModulesToSave = ["lm_head"], LearningRate = 1e-2, MaxSteps = 6, PrecomputeRefLogProbs = precompute,
        });
        TrainResult live = TrainingFixture.Train(Save("live", false));
        var adapter = Adapter(live.FinalCheckpoint);
        Assert.Contains("base_model.model.lm_head.weight", adapter.Keys); // PEFT's saved name (modules_to_save.default stripped)
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(live.FinalCheckpoint, LoraAdapters.ConfigFile)))!;
        Assert.Equal("lm_head", config["modules_to_save"]![0]!.GetValue<string>());

        using CausalLm base_ = ModelCheckpoint.Load(qwen.ModelDir);
        float[] original = base_.named_parameters().Single(p => p.name == "lm_head.weight").parameter.data<float>().ToArray();
        Assert.False(original.AsSpan().SequenceEqual(adapter["base_model.model.lm_head.weight"]), "lm_head did not train");

        // The live reference scores with the original head: the same run with the base's precomputed scores agrees.
        var pre = Adapter(TrainingFixture.Train(Save("pre", true)).FinalCheckpoint);
        foreach (var (name, v) in adapter)
            for (int i = 0; i < v.Length; i++)
                Assert.True(Math.Abs(v[i] - pre[name][i]) <= 1e-5 + 1e-4 * Math.Abs(v[i]), $"{name}[{i}]: {v[i]} vs {pre[name][i]}");

        // Loading the adapter puts the trained head in; merging keeps it.
        LoraAdapters.Load(base_, live.FinalCheckpoint);
        Assert.True(base_.named_parameters().Single(p => p.name == "lm_head.weight").parameter.data<float>().ToArray().AsSpan().SequenceEqual(adapter["base_model.model.lm_head.weight"]));

        KtoConfig unknown = Save("unknown", false) with { LoraModulesToSave = ["score"] };
        string message = Assert.Throws<ArgumentException>(() => TrainingFixture.Train(unknown)).Message;
        Assert.Contains("lora_modules_to_save: \"score\" matches no module", message);
        Assert.Contains("lm_head", message); // lists the modules that exist
    }

    [Fact]
    public void ContinuingAnAdapterStartsFromItAndItIsTheReference()
    {
        TrainResult first = TrainingFixture.Train(Lora("first", c => c with { MaxSteps = 4 }));
        string path = Path.Combine(_f.Dir, "continue.json");
        File.WriteAllText(path, $$"""
            {"model_name_or_path": "model", "dataset_path": "data.jsonl", "output_dir": "continued", "adapter_name_or_path": "{{first.FinalCheckpoint}}",
             "learning_rate": 0.01, "max_steps": 3, "per_device_train_batch_size": 4, "logging_steps": 1, "max_length": 16, "max_prompt_length": 8, "num_threads": 1}
            """);
        KtoConfig c = KtoConfigReader.Load(path);
        Assert.True(c.UsePeft);
        Assert.Equal(4, c.LoraR); // from adapter_config.json
        Assert.Equal(["all-linear"], c.LoraTargetModules);
        TrainResult second = TrainingFixture.Train(c);

        // TRL's frozen "ref" adapter: at the first step the policy is its reference, so every reward and the KL are 0.
        var step1 = TrainingFixture.Metrics(c)[0];
        Assert.Equal(0.0, step1["rewards/chosen"]);
        Assert.Equal(0.0, step1["rewards/rejected"]);
        Assert.Equal(0.0, step1["kl"]);
        var start = Adapter(first.FinalCheckpoint);
        var end = Adapter(second.FinalCheckpoint);
        Assert.Equal(start.Keys.Order(), end.Keys.Order());
        Assert.Contains(start, kv => !kv.Value.AsSpan().SequenceEqual(end[kv.Key])); // it trained on from there

        // A LoRA key that contradicts the adapter is refused with its line.
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"num_threads\": 1}", "\"num_threads\": 1,\n \"lora_r\": 8}"));
        string message = Assert.Throws<ConfigException>(() => KtoConfigReader.Load(path)).Message;
        Assert.Contains("continue.json:3: \"lora_r\" is 8, but the adapter to continue", message);
    }

    [Fact]
    public void SftTrainsLoraAdapters()
    {
        KtoConfig c = Lora("sft", c => c with { LearningRate = 3e-2 });
        using var sft = new SftTrainer(c, NullObserver.Instance);
        TrainResult r = sft.Run();
        var metrics = TrainingFixture.Metrics(c);
        Assert.True(metrics[^1]["loss"] < metrics[0]["loss"], "SFT loss did not fall");
        Assert.True(File.Exists(Path.Combine(r.FinalCheckpoint, LoraAdapters.WeightsFile)));
        Assert.False(File.Exists(Path.Combine(r.FinalCheckpoint, ModelCheckpoint.WeightsFile)));
    }

    [Fact]
    public void UnderBf16TheFrozenBaseIsBfloat16AndTheAdaptersFloat32()
    {
        using TrainingSetup setup = TrainingSetup.Prepare(Lora("bf16", c => c with { Bf16 = true }), NullObserver.Instance);
        Assert.Same(setup.Policy, setup.Compute); // no second copy of the base
        foreach (var (name, p) in setup.Policy.named_parameters())
            Assert.Equal(LoraAdapters.IsLoraParameter(name) ? TorchSharp.torch.ScalarType.Float32 : TorchSharp.torch.ScalarType.BFloat16, p.dtype);
    }

    [Fact]
    public void TheRunSpecNamesTheAdapterToContinueSoANodeWithAnotherIsRefused()
    {
        TrainResult first = TrainingFixture.Train(Lora("first", c => c with { MaxSteps = 2 }));
        KtoConfig c = Lora("continued", c => c with { AdapterNameOrPath = first.FinalCheckpoint });
        var spec = Kto.Domain.Cluster.RunSpec.FromConfig("r", c, NullObserver.Instance);
        Assert.Contains("adapter/adapter_model.safetensors=", spec.PolicyIdentity);
        spec.EnsureSameModels(c, loadsReference: false); // this node's files are the run's

        TrainResult other = TrainingFixture.Train(Lora("other", c => c with { MaxSteps = 3 }));
        File.Copy(Path.Combine(other.FinalCheckpoint, LoraAdapters.WeightsFile), Path.Combine(first.FinalCheckpoint, LoraAdapters.WeightsFile), overwrite: true);
        string message = Assert.Throws<InvalidDataException>(() => spec.EnsureSameModels(c, loadsReference: false)).Message;
        Assert.Contains("the policy model this node finds", message);
        Assert.Contains("adapter/adapter_model.safetensors (", message);
    }
}
