using System.Text.Json;
using Kto.Domain.Data;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Training;

/// <summary>
/// Evaluation during training (eval_dataset_path, eval_strategy, eval_steps, per_device_eval_batch_size): the logged
/// eval line equals the KTO formulas applied by hand, in double precision, to log-probs of the step's weights and the
/// reference, with KL pairs from the eval set's own batches; a class missing from the eval set logs nothing for it.
/// </summary>
public sealed class EvaluationTests : IDisposable
{
    private readonly TrainingFixture _f = new();

    public void Dispose() => _f.Dispose();

    private string EvalFile(params (string Prompt, string Completion, bool Label)[] rows)
    {
        string path = Path.Combine(_f.Dir, $"eval-{rows.Length}-{rows.Count(r => r.Label)}.jsonl");
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(new { prompt = r.Prompt, completion = r.Completion, label = r.Label })));
        return path;
    }

    private KtoConfig Config(string name, string evalPath) => _f.Config(name, c => c with
    {
        MaxSteps = 2, EvalDatasetPath = evalPath, EvalStrategy = "steps", EvalSteps = 2, PerDeviceEvalBatchSize = 4,
    });

    /// <summary>The eval line of <paramref name="step"/> in the run's metrics.jsonl.</summary>
    private static Dictionary<string, double?> EvalLine(KtoConfig c, int step) =>
        TrainingFixture.Metrics(c).Single(l => l.ContainsKey("eval_loss") && l["step"] == step);

    /// <summary>The figures by hand: log-probs from the checkpoint and the reference, everything else in double.</summary>
    private Dictionary<string, double> ByHand(KtoConfig c, string checkpoint)
    {
        var lengths = new DatasetLoadOptions(c.MaxLength, c.MaxPromptLength, null);
        var examples = KtoDatasetLoader.Load(c.EvalDatasetPath!, ByteTokenizer.Instance, lengths).Examples;
        var items = TrainingData.Build(examples, c.PerDeviceEvalBatchSize, lengths).Items;
        using var policy = Kto.Domain.Checkpoints.ModelCheckpoint.Load(checkpoint);
        using var reference = Kto.Domain.Checkpoints.ModelCheckpoint.Load(_f.ModelDir);
        double[] Score(Kto.Domain.Model.CausalLm m, IEnumerable<(int[], int[])> s) => SequenceLogProbs.Score(m, [.. s], ByteTokenizer.Eos, 64, CPU);
        double[] pol = Score(policy, items.Select(i => (i.Example.PromptIds, i.Example.CompletionIds)));
        double[] refl = Score(reference, items.Select(i => (i.Example.PromptIds, i.Example.CompletionIds)));
        double[] polKl = Score(policy, items.Select(i => (i.KlPromptIds, i.KlCompletionIds)));
        double[] refKl = Score(reference, items.Select(i => (i.KlPromptIds, i.KlCompletionIds)));

        double beta = c.Beta, weightedLoss = 0, klSum = 0, chosen = 0, rejected = 0;
        int batches = 0, nChosen = 0, nRejected = 0;
        for (int start = 0; start < items.Count; start += c.PerDeviceEvalBatchSize)
        {
            int n = Math.Min(c.PerDeviceEvalBatchSize, items.Count - start);
            double kl = Math.Max(0, Enumerable.Range(start, n).Average(i => polKl[i] - refKl[i]));
            double loss = 0;
            for (int i = start; i < start + n; i++)
            {
                double r = pol[i] - refl[i];
                bool desirable = items[i].Example.Label;
                loss += desirable ? 1 - Sigmoid(beta * (r - kl)) : 1 - Sigmoid(beta * (kl - r));
                if (desirable) { chosen += beta * r; nChosen++; } else { rejected += beta * r; nRejected++; }
            }
            weightedLoss += loss / n * n;
            klSum += kl;
            batches++;
        }
        var d = new Dictionary<string, double> { ["eval_loss"] = weightedLoss / items.Count, ["eval_kl"] = klSum / batches };
        if (nChosen > 0) d["eval_rewards/chosen"] = chosen / nChosen;
        if (nRejected > 0) d["eval_rewards/rejected"] = rejected / nRejected;
        if (nChosen > 0 && nRejected > 0) d["eval_rewards/margins"] = chosen / nChosen - rejected / nRejected;
        return d;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void ATwoClassEvalSetLogsTheHandComputedFigures()
    {
        KtoConfig c = Config("two", EvalFile(("3+4=", "7", true), ("5+5=", "10", true), ("2+2=", "5", false), ("9+1=", "10", true),
            ("6+3=", "8", false), ("1+1=", "2", true)));
        TrainResult r = TrainingFixture.Train(c);
        var line = EvalLine(c, 2);
        var expected = ByHand(c, r.FinalCheckpoint);
        Assert.Equal(expected.Keys.Order(), line.Keys.Where(k => k.StartsWith("eval_", StringComparison.Ordinal) && !k.StartsWith("eval_logps", StringComparison.Ordinal)
            && !k.StartsWith("eval_logits", StringComparison.Ordinal) && !k.StartsWith("eval_count", StringComparison.Ordinal) && k is not ("eval_kl_raw" or "eval_runtime" or "eval_samples_per_second")).Order());
        foreach (var (key, value) in expected)
            Assert.True(Math.Abs(line[key]!.Value - value) <= 1e-5 * Math.Max(1, Math.Abs(value)), $"{key}: logged {line[key]}, by hand {value}");
        Assert.Equal(4, line["eval_count/chosen"]);
        Assert.Equal(2, line["eval_count/rejected"]);
        Assert.False(line.ContainsKey("loss"), "the eval line carries eval figures only");
    }

    [Fact]
    public void AOneClassEvalSetLogsNothingForTheMissingClass()
    {
        KtoConfig c = Config("one", EvalFile(("3+4=", "7", true), ("5+5=", "10", true), ("9+1=", "10", true)));
        TrainResult r = TrainingFixture.Train(c);
        var line = EvalLine(c, 2);
        Assert.False(line.ContainsKey("eval_rewards/rejected"));
        Assert.False(line.ContainsKey("eval_rewards/margins"));
        Assert.False(line.ContainsKey("eval_logps/rejected"));
        var expected = ByHand(c, r.FinalCheckpoint);
        Assert.True(Math.Abs(line["eval_rewards/chosen"]!.Value - expected["eval_rewards/chosen"]) <= 1e-5);
        Assert.True(Math.Abs(line["eval_loss"]!.Value - expected["eval_loss"]) <= 1e-5);
    }

    [Fact]
    public void EpochStrategyEvaluatesAtEveryEpochsEnd()
    {
        KtoConfig c = _f.Config("epochs", x => x with
        {
            NumTrainEpochs = 2, EvalDatasetPath = EvalFile(("3+4=", "7", true), ("2+2=", "5", false)), EvalStrategy = "epoch",
        });
        TrainingFixture.Train(c);
        int perEpoch = BatchPlan.For(c, 24).StepsPerEpoch;
        Assert.Equal([perEpoch, 2 * perEpoch], TrainingFixture.Metrics(c).Where(l => l.ContainsKey("eval_loss")).Select(l => (int)l["step"]!.Value));
    }

    [Fact]
    public void EvalSettingsAreCheckedWithTheirLine()
    {
        string path = Path.Combine(_f.Dir, "bad.json");
        File.WriteAllText(path, """
            {"model_name_or_path": "model", "dataset_path": "data.jsonl",
             "eval_strategy": "steps"}
            """);
        Assert.Contains(":2: \"eval_strategy\" \"steps\" needs eval_dataset_path", Assert.Throws<ConfigException>(() => KtoConfigReader.Load(path)).Message);
        File.WriteAllText(path, """{"model_name_or_path": "model", "dataset_path": "data.jsonl", "eval_strategy": "sometimes"}""");
        Assert.Contains("\"eval_strategy\" must be \"no\", \"steps\" or \"epoch\"", Assert.Throws<ConfigException>(() => KtoConfigReader.Load(path)).Message);
    }
}
