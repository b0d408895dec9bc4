using System.Text.Json;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Domain.Tests.Training;

/// <summary>A temp directory with a tiny byte-level model, a small feedback dataset and run configs.</summary>
internal sealed class TrainingFixture : IDisposable
{
    /// <param name="arch">gpt2; or llama (tied head, grouped-query attention, llama3 rope scaling), qwen2 (q/k/v biases,
    /// untied head) or qwen3 (per-head q/k norms, untied head, grouped-query attention).</param>
    /// <param name="configEdit">Applied to every config the fixture makes (before the test's own edit), e.g. bf16.</param>
    /// <param name="storedDtype">How the starting model's weights are stored (float32, or bfloat16 as the Hub's; the values are then bfloat16's).</param>
    public TrainingFixture(int examples = 24, double desirableShare = 0.5, int seed = 5, string arch = "gpt2", Func<KtoConfig, KtoConfig>? configEdit = null,
        TorchSharp.torch.ScalarType storedDtype = TorchSharp.torch.ScalarType.Float32)
    {
        _configEdit = configEdit;
        Dir = Directory.CreateTempSubdirectory("kto-train-").FullName;
        ModelDir = Path.Combine(Dir, "model");
        using (var g = new torch.Generator(3))
        using (CausalLm model = ModelConfig(arch).CreateModel(g))
            ModelCheckpoint.Save(model, ModelDir, dtype: storedDtype);
        DataPath = Path.Combine(Dir, "data.jsonl");
        var rng = new Random(seed);
        using var w = new StreamWriter(DataPath);
        for (int i = 0; i < examples; i++)
        {
            int a = rng.Next(1, 30), b = rng.Next(1, 30);
            bool good = rng.NextDouble() < desirableShare;
            int answer = good ? a + b : a + b + rng.Next(1, 9);
            w.WriteLine(JsonSerializer.Serialize(new { prompt = $"{a}+{b}=", completion = answer.ToString(), label = good }));
        }
    }

    /// <summary>The fixture's tiny model of <paramref name="arch"/> (byte tokenizer, 24 positions, width 16, one layer).</summary>
    public static LmConfig ModelConfig(string arch) => arch switch
    {
        "gpt2" => new GptConfig(257, 24, 16, 1, 2, Tokenizer: "byte"),
        "llama" => new DecoderConfig("llama", 257, 16, 40, 1, 4, 2, 4, 1e-5, 500000, new Llama3RopeScaling(8, 1, 4, 16),
            QkvBias: false, OProjBias: false, MlpBias: false, QkNorm: false, TieWordEmbeddings: true, 24, null, 256, 256) { Tokenizer = "byte" },
        "qwen2" => new DecoderConfig("qwen2", 257, 16, 32, 1, 2, 2, 8, 1e-6, 1000000, null,
            QkvBias: true, OProjBias: false, MlpBias: false, QkNorm: false, TieWordEmbeddings: false, 24, null, null, 256) { Tokenizer = "byte" },
        "qwen3" => new DecoderConfig("qwen3", 257, 16, 32, 1, 4, 2, 8, 1e-6, 1000000, null,
            QkvBias: false, OProjBias: false, MlpBias: false, QkNorm: true, TieWordEmbeddings: false, 24, null, null, 256) { Tokenizer = "byte" },
        _ => throw new ArgumentException($"no fixture model for {arch}", nameof(arch)),
    };

    private readonly Func<KtoConfig, KtoConfig>? _configEdit;

    public string Dir { get; }
    public string ModelDir { get; }
    public string DataPath { get; }

    public KtoConfig Config(string runName, Func<KtoConfig, KtoConfig>? edit = null)
    {
        var c = new KtoConfig
        {
            ModelNameOrPath = ModelDir,
            DatasetPath = DataPath,
            OutputDir = Path.Combine(Dir, runName),
            LearningRate = 3e-3,
            PerDeviceTrainBatchSize = 4,
            NumTrainEpochs = 2,
            LoggingSteps = 1,
            SaveSteps = 1000,
            MaxLength = 16,
            MaxPromptLength = 8,
            NumThreads = 1,
            Seed = 7,
        };
        if (_configEdit is not null) c = _configEdit(c);
        return edit is null ? c : edit(c);
    }

    public static TrainResult Train(KtoConfig config, CancellationToken cancel = default, ITrainingObserver? observer = null)
    {
        observer ??= NullObserver.Instance;
        using TrainingSetup setup = TrainingSetup.Prepare(config, observer);
        return new KtoTrainer(setup, observer).Run(cancel);
    }

    /// <summary>All weights of a checkpoint, flattened, in name order (a LoRA checkpoint: its adapter's, named as in the model).</summary>
    public static Dictionary<string, float[]> Weights(string checkpointDir)
    {
        string adapter = Path.Combine(checkpointDir, Kto.Domain.Model.LoraAdapters.WeightsFile);
        if (File.Exists(adapter))
        {
            var stored = Safetensors.Read(adapter);
            var a = stored.Tensors.ToDictionary(kv => kv.Key["base_model.model.".Length..], kv => kv.Value.data<float>().ToArray());
            foreach (var t in stored.Tensors.Values) t.Dispose();
            return a;
        }
        // The exact (float32) weights: the master file of a run whose model is stored in a half dtype.
        string masters = Path.Combine(checkpointDir, TrainingCheckpoint.MasterWeightsFile);
        var contents = Safetensors.Read(File.Exists(masters) ? masters : Path.Combine(checkpointDir, ModelCheckpoint.WeightsFile));
        var d = contents.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray());
        foreach (var t in contents.Tensors.Values) t.Dispose();
        return d;
    }

    public static List<Dictionary<string, double?>> Metrics(KtoConfig c)
        => File.ReadAllLines(Path.Combine(c.OutputDir, MetricsLog.FileName))
            .Select(l => JsonSerializer.Deserialize<Dictionary<string, double?>>(l)!).ToList();

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>Cancels a run when it reaches a given step (to simulate an interruption at a step boundary).</summary>
internal sealed class StopAtStep(int step, CancellationTokenSource cancel) : ITrainingObserver
{
    public void Info(string message) { }
    public void Warn(string message) { }
    public void Progress(ProgressUpdate update)
    {
        if (update.Phase == "train" && update.Done >= step) cancel.Cancel();
    }
}

/// <summary>Collects warnings.</summary>
internal sealed class RecordingObserver : ITrainingObserver
{
    public List<string> Warnings { get; } = [];
    public List<string> Infos { get; } = [];
    public void Info(string message) => Infos.Add(message);
    public void Warn(string message) => Warnings.Add(message);
    public void Progress(ProgressUpdate update) { }
}
