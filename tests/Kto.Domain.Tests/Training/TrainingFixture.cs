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
    public TrainingFixture(int examples = 24, double desirableShare = 0.5, int seed = 5)
    {
        Dir = Directory.CreateTempSubdirectory("kto-train-").FullName;
        ModelDir = Path.Combine(Dir, "model");
        using (var g = new torch.Generator(3))
        using (var model = new GptLmHeadModel(new GptConfig(257, 24, 16, 1, 2, Tokenizer: "byte"), g))
            ModelCheckpoint.Save(model, ModelDir);
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
        return edit is null ? c : edit(c);
    }

    public static TrainResult Train(KtoConfig config, CancellationToken cancel = default, ITrainingObserver? observer = null)
    {
        observer ??= NullObserver.Instance;
        using TrainingSetup setup = TrainingSetup.Prepare(config, observer);
        return new KtoTrainer(setup, observer).Run(cancel);
    }

    /// <summary>All weights of a checkpoint, flattened, in name order.</summary>
    public static Dictionary<string, float[]> Weights(string checkpointDir)
    {
        var contents = Safetensors.Read(Path.Combine(checkpointDir, ModelCheckpoint.WeightsFile));
        var d = contents.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
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
