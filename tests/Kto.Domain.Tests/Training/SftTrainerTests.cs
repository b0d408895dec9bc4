using System.Text;
using System.Text.Json;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Training;

public sealed class SftTrainerTests : IDisposable
{
    private readonly TrainingFixture _f = new();

    public void Dispose() => _f.Dispose();

    private KtoConfig Sft(string name, string dataPath, Func<KtoConfig, KtoConfig>? edit = null)
    {
        var c = SftDefaults.Config with
        {
            ModelNameOrPath = _f.ModelDir,
            DatasetPath = dataPath,
            OutputDir = Path.Combine(_f.Dir, name),
            LearningRate = 1e-2,
            PerDeviceTrainBatchSize = 4,
            NumTrainEpochs = 20,
            LoggingSteps = 5,
            SaveSteps = 1000,
            MaxLength = 16,
            MaxPromptLength = 8,
            NumThreads = 1,
        };
        return edit is null ? c : edit(c);
    }

    private string WriteRows(string name, IEnumerable<object> rows)
    {
        string path = Path.Combine(_f.Dir, name);
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(r)));
        return path;
    }

    [Fact]
    public void LearnsItsCompletionsAndLogsSftMetrics()
    {
        string data = WriteRows("sft.jsonl", Enumerable.Range(0, 8).Select(i => new { prompt = $"{i}+{i}=", completion = (2 * i).ToString() }));
        var c = Sft("sft", data);
        using var trainer = new SftTrainer(c, NullObserver.Instance);
        TrainResult r = trainer.Run();
        var lines = TrainingFixture.Metrics(c);
        Assert.Equal(r.GlobalStep / 5, lines.Count);
        Assert.True(lines[^1]["loss"] < lines[0]["loss"] / 2, $"loss {lines[0]["loss"]} → {lines[^1]["loss"]}");
        Assert.True(lines[^1]["mean_token_accuracy"] > lines[0]["mean_token_accuracy"]);
        Assert.All(lines, l => Assert.True(l.ContainsKey("num_tokens")));
    }

    [Fact]
    public void LeavesOutExamplesLabelledFalse()
    {
        string data = WriteRows("kto.jsonl", [
            new { prompt = "1+1=", completion = "2", label = true },
            new { prompt = "1+1=", completion = "3", label = false },
            new { prompt = "2+2=", completion = "4", label = true },
        ]);
        var observer = new RecordingObserver();
        using var trainer = new SftTrainer(Sft("mixed", data, c => c with { MaxSteps = 1 }), observer);
        trainer.Run();
        Assert.Contains(observer.Infos, m => m.Contains("1 example(s) labelled false left out", StringComparison.Ordinal));
        Assert.Contains(observer.Infos, m => m.Contains("2 prompt/completion examples", StringComparison.Ordinal));
    }

    [Fact]
    public void SftConfigsRejectKtoSettingsAndDefaultToSftLearningRate()
    {
        byte[] Json(string s) => Encoding.UTF8.GetBytes(s);
        var c = KtoConfigReader.Parse(Json("""{"model_name_or_path": "m", "dataset_path": "d", "per_device_train_batch_size": 1}"""), "sft.json", RunKind.Sft);
        Assert.Equal(SftDefaults.LearningRate, c.LearningRate);
        Assert.Equal(1, c.PerDeviceTrainBatchSize); // no KL term, so one example per step is fine
        var e = Assert.Throws<ConfigException>(() => KtoConfigReader.Parse(Json("""{"model_name_or_path": "m", "dataset_path": "d", "beta": 0.1}"""), "sft.json", RunKind.Sft));
        Assert.Contains("\"beta\"", e.Message);
        Assert.Contains("KTO setting", e.Message);
    }
}
