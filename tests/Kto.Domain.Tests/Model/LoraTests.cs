using System.Text.Json.Nodes;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Tests.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>
/// LoRA as PEFT does it: forward = the merged weights' forward (checked against a double-precision computation),
/// adapters off = the base exactly, PEFT's key layout and config, GPT-2 Conv1D (fan_in_fan_out) and Llama linear
/// targets, rsLoRA scaling, save → load, merge, and the one-line errors.
/// </summary>
public sealed class LoraTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-lora-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static CausalLm Model(string arch, ulong seed = 2)
    {
        using var g = new Generator(seed);
        return TrainingFixture.ModelConfig(arch).CreateModel(g);
    }

    /// <summary>Gives every adapter matrix random values (B starts at zero, which would hide mistakes).</summary>
    private static void Randomize(CausalLm model, ulong seed)
    {
        using var g = new Generator(seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in model.named_parameters())
            if (LoraAdapters.IsLoraParameter(name)) p.normal_(0, 0.3, g);
    }

    private static readonly long[] Ids = [3, 1, 4, 1, 5, 9, 2, 6];

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static Tensor Logits(CausalLm model)
    {
        using var noGrad = no_grad();
        return model.forward(tensor(Ids).unsqueeze(0)).to_type(ScalarType.Float64);
    }

    [Theory]
    [InlineData("gpt2", "c_attn,c_fc", false)]
    [InlineData("llama", "all-linear", false)]
    [InlineData("qwen3", "q_proj,v_proj,down_proj", true)]
    public void ForwardEqualsTheMergedWeightsAndAdaptersOffEqualTheBaseExactly(string arch, string targets, bool rslora)
    {
        using CausalLm model = Model(arch);
        using Tensor baseLogits = Logits(model);
        var options = new LoraOptions(R: 4, Alpha: 8, Dropout: 0, TargetModules: targets.Split(','), UseRslora: rslora);
        IReadOnlyList<string> adapted = LoraAdapters.Attach(model, options, new Generator(5));
        Assert.NotEmpty(adapted);
        using (Tensor fresh = Logits(model)) Assert.True(Same(fresh, baseLogits), "B = 0 at first: the adapted model is the base");
        Randomize(model, 7);
        model.eval();
        using Tensor adaptedLogits = Logits(model);
        Assert.False(adaptedLogits.allclose(baseLogits), "random adapters changed nothing");
        using (LoraAdapters.Disabled(model))
        using (Tensor off = Logits(model))
            Assert.True(Same(off, baseLogits), "adapters off must be the base model exactly");

        // The merged model computes the same logits; the delta checked in double precision: scaling·B·A.
        foreach (var (name, m) in model.named_modules())
        {
            if (m is not AdaptableLayer { HasLora: true } layer) continue;
            var (a, b) = layer.LoraWeights!.Value;
            double scaling = rslora ? 8 / Math.Sqrt(4) : 8.0 / 4;
            Assert.Equal(scaling, layer.LoraScaling);
            using Tensor expected = b.to_type(ScalarType.Float64).matmul(a.to_type(ScalarType.Float64)) * scaling;
            using Tensor delta = layer.MergedDelta().to_type(ScalarType.Float64);
            Assert.True((layer is Conv1D ? delta.t() : delta).allclose(expected, 1e-6, 1e-7), name);
        }
        using CausalLm merged = Model(arch);
        using (no_grad())
            foreach (var ((name, p), (_, q)) in merged.named_parameters().Zip(model.named_parameters().Where(p => !LoraAdapters.IsLoraParameter(p.name))))
                p.copy_(q);
        LoraAdapters.MergeInto(model);
        using (no_grad())
            foreach (var ((_, p), (_, q)) in merged.named_parameters().Zip(model.named_parameters().Where(p => !LoraAdapters.IsLoraParameter(p.name))))
                p.copy_(q);
        using Tensor mergedLogits = Logits(merged);
        Assert.True(mergedLogits.allclose(adaptedLogits, 1e-5, 1e-5), "merged weights ≠ adapted forward");
    }

    [Fact]
    public void OnlyAdapterParametersTrainAndPeftsLayoutIsSavedAndLoaded()
    {
        using CausalLm model = Model("llama");
        var options = new LoraOptions(R: 2, Alpha: 4, Dropout: 0, TargetModules: ["q_proj", "v_proj"]);
        LoraAdapters.Attach(model, options);
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.All(trainable, n => Assert.True(LoraAdapters.IsLoraParameter(n), n));
        Assert.Equal(4, trainable.Count); // 1 layer × (q, v) × (A, B)
        Randomize(model, 3);

        string dir = Path.Combine(_dir, "adapter");
        LoraAdapters.Save(model, dir, options, "path/to/base");
        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, LoraAdapters.ConfigFile)))!.AsObject();
        Assert.Equal(("LORA", "CAUSAL_LM", 2, 4.0), (config["peft_type"]!.GetValue<string>(), config["task_type"]!.GetValue<string>(), config["r"]!.GetValue<int>(), config["lora_alpha"]!.GetValue<double>()));
        using (var s = File.OpenRead(Path.Combine(dir, LoraAdapters.WeightsFile)))
        {
            var entries = Safetensors.ReadHeader(s, "adapter").Entries.ToDictionary(e => e.Name, e => e.Shape);
            Assert.Equal([2L, 16L], entries["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]);
            Assert.Equal([16L, 2L], entries["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]);
            Assert.Equal(4, entries.Count);
        }

        using CausalLm again = Model("llama");
        LoraAdapters.Load(again, dir);
        model.eval();
        again.eval();
        using Tensor a = Logits(model), b = Logits(again);
        Assert.True(Same(a, b), "save → load changed the adapted model");
    }

    [Fact]
    public void AHandBuiltPeftAdapterWithDefaultKeysAndRsloraLoads()
    {
        using CausalLm model = Model("gpt2");
        string dir = Path.Combine(_dir, "peft");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, LoraAdapters.ConfigFile),
            """{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 6, "target_modules": ["c_attn"], "use_rslora": true, "fan_in_fan_out": true}""");
        using var g = new Generator(11);
        using Tensor a = randn([2, 16], generator: g), b = randn([48, 2], generator: g);
        // As PEFT's state dict may name them in memory: with the adapter name "default".
        Safetensors.Write(Path.Combine(dir, LoraAdapters.WeightsFile), new Dictionary<string, Tensor>
        {
            ["base_model.model.transformer.h.0.attn.c_attn.lora_A.default.weight"] = a,
            ["base_model.model.transformer.h.0.attn.c_attn.lora_B.default.weight"] = b,
        });
        using Tensor before = Logits(model);
        LoraOptions o = LoraAdapters.Load(model, dir);
        Assert.True(o.UseRslora);
        // The merged update in GPT-2's (in, out) layout: (scaling·B·A)ᵀ with scaling = 6/√2.
        var layer = (Conv1D)model.named_modules().Single(m => m.name == "transformer.h.0.attn.c_attn").module;
        using Tensor expected = (b.matmul(a) * (6 / Math.Sqrt(2))).t();
        Assert.True(layer.MergedDelta().allclose(expected, 1e-6, 1e-6));
        using Tensor after = Logits(model);
        Assert.False(after.allclose(before));
    }

    [Fact]
    public void BadAdaptersAreRefusedNamingFileAndKey()
    {
        using CausalLm model = Model("llama");
        Assert.Contains("lora_target_modules: \"c_attn\" matches no module of this llama model (its linear modules: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj",
            Assert.Throws<ArgumentException>(() => LoraAdapters.Attach(model, new LoraOptions(TargetModules: ["c_attn"]))).Message);
        Assert.Contains("lora_r must be positive", Assert.Throws<ArgumentException>(() => LoraAdapters.Attach(Model("llama"), new LoraOptions(R: 0))).Message);

        string dir = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, LoraAdapters.ConfigFile), """{"peft_type": "IA3", "target_modules": ["q_proj"]}""");
        Assert.Contains("\"peft_type\" \"IA3\" is not supported", Assert.Throws<InvalidDataException>(() => LoraAdapters.Load(Model("llama"), dir)).Message);

        File.WriteAllText(Path.Combine(dir, LoraAdapters.ConfigFile), """{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}""");
        using (Tensor wrong = zeros(2, 99))
        using (Tensor rightB = zeros(16, 2))
            Safetensors.Write(Path.Combine(dir, LoraAdapters.WeightsFile), new Dictionary<string, Tensor>
            {
                ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = wrong,
                ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"] = rightB,
            });
        Assert.Contains("\"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\" has shape [2, 99], but the base model needs [2, 16]",
            Assert.Throws<InvalidDataException>(() => LoraAdapters.Load(Model("llama"), dir)).Message);
    }

    [Fact]
    public void AnExamplesDropoutMaskDependsOnItsSeedAloneNotOnTheBatch()
    {
        using CausalLm model = Model("llama");
        LoraAdapters.Attach(model, new LoraOptions(4, 8, 0.5, [LoraOptions.AllLinear]));
        Randomize(model, 11);
        model.train();
        long[] x = [3, 1, 4, 1, 5], y = [2, 7, 1, 8, 2, 8, 1, 8];
        Tensor Run(long[][] rows, long[] seeds)
        {
            using var noGrad = no_grad();
            long t = rows.Max(r => r.Length);
            using Tensor ids = tensor(rows.SelectMany(r => r.Concat(Enumerable.Repeat(0L, (int)(t - r.Length)))).ToArray(), [rows.Length, t]);
            using var d = LoraAdapters.DropoutSeeds(model, seeds);
            return model.forward(ids).to_type(ScalarType.Float64);
        }
        using Tensor alone = Run([x], [42]);
        using Tensor inBatch = Run([y, x], [7, 42]);
        using Tensor xInBatch = inBatch[1].narrow(0, 0, x.Length).unsqueeze(0);
        double diff = (alone - xInBatch).abs().max().item<double>();
        Assert.True(diff < 1e-5, $"the same seed in another batch gave another result ({diff:E2})");
        using Tensor otherSeed = Run([x], [43]);
        Assert.True((alone - otherSeed).abs().max().item<double>() > 1e-3, "another seed gave the same mask");
        model.eval();
        using Tensor noDropout = Run([x], [42]);
        Assert.True((alone - noDropout).abs().max().item<double>() > 1e-3, "dropout did not act while training");
    }
}
