using System.Text;
using Kto.Domain.Loss;
using Kto.Domain.Options;

namespace Kto.Domain.Tests.Options;

public class KtoConfigReaderTests
{
    private static KtoConfig Parse(string json) => KtoConfigReader.Parse(Encoding.UTF8.GetBytes(json), "run.json");

    private const string Minimal = """{"model_name_or_path": "m", "dataset_path": "d.jsonl"}""";

    [Fact]
    public void DefaultsAreTrlsKtoConfigDefaults()
    {
        KtoConfig c = Parse(Minimal);
        Assert.Equal(0.1, c.Beta);
        Assert.Equal(1.0, c.DesirableWeight);
        Assert.Equal(1.0, c.UndesirableWeight);
        Assert.Equal(KtoLossType.Kto, c.LossType);
        Assert.Equal(1e-6, c.LearningRate);
        Assert.Equal(1024, c.MaxLength);
        Assert.Equal(512, c.MaxPromptLength);
        Assert.False(c.PrecomputeRefLogProbs);
        Assert.Equal(8, c.PerDeviceTrainBatchSize);
        Assert.Equal(1, c.GradientAccumulationSteps);
        Assert.Equal(3.0, c.NumTrainEpochs);
        Assert.Equal("linear", c.LrSchedulerType);
        Assert.Equal(1.0, c.MaxGradNorm);
        Assert.Equal(42, c.Seed);
    }

    [Fact]
    public void EverySettingIsRead()
    {
        KtoConfig c = Parse("""
            {
              "model_name_or_path": "m", "dataset_path": "d.jsonl", "output_dir": "o",
              "ref_model_name_or_path": "r", "beta": 0.5, "desirable_weight": 1.33, "undesirable_weight": 0.5,
              "loss_type": "apo_zero_unpaired", "max_length": 64, "max_prompt_length": 32, "max_completion_length": 16,
              "precompute_ref_log_probs": true, "learning_rate": 5e-7, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1,
              "warmup_steps": 3, "weight_decay": 0.01, "adam_beta1": 0.8, "adam_beta2": 0.99, "adam_epsilon": 1e-6,
              "max_grad_norm": 0.5, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
              "num_train_epochs": 1.5, "max_steps": 100, "seed": 1, "data_seed": 2, "shuffle": false,
              "logging_steps": 5, "save_steps": 50, "save_total_limit": 3, "resume_from_checkpoint": "latest",
              "device": "cuda:1", "num_threads": 2
            }
            """);
        Assert.Equal("r", c.RefModelNameOrPath);
        Assert.Equal(KtoLossType.ApoZeroUnpaired, c.LossType);
        Assert.Equal(16, c.MaxCompletionLength);
        Assert.True(c.PrecomputeRefLogProbs);
        Assert.Equal(1.5, c.NumTrainEpochs);
        Assert.Equal(2, c.EffectiveDataSeed);
        Assert.False(c.Shuffle);
        Assert.Equal(3, c.SaveTotalLimit);
        Assert.Equal("cuda:1", c.Device);
        Assert.Equal(2, c.NumThreads);
        // ToJson writes every key, and what it writes reads back the same.
        KtoConfig back = KtoConfigReader.Parse(Encoding.UTF8.GetBytes(KtoConfigReader.ToJson(c)), "back");
        Assert.Equal(c, back);
    }

    [Fact]
    public void UnknownKeyIsRejectedWithLineAndSuggestion()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("{\n  \"model_name_or_path\": \"m\",\n  \"dataset_path\": \"d\",\n  \"learning_rat\": 1e-6\n}"));
        Assert.Contains("run.json:4", e.Message);
        Assert.Contains("\"learning_rat\"", e.Message);
        Assert.Contains("did you mean \"learning_rate\"", e.Message);
    }

    [Theory]
    [InlineData("\"beta\": \"0.1\"", "\"beta\"", "a number")]
    [InlineData("\"max_length\": 12.5", "\"max_length\"", "an integer")]
    [InlineData("\"precompute_ref_log_probs\": 1", "\"precompute_ref_log_probs\"", "true or false")]
    [InlineData("\"loss_type\": \"sigmoid\"", "\"loss_type\"", "\"kto\" or \"apo_zero_unpaired\"")]
    [InlineData("\"output_dir\": 3", "\"output_dir\"", "a string")]
    public void WrongTypesAreRejectedNamingTheKey(string setting, string key, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($"{{\"model_name_or_path\": \"m\", \"dataset_path\": \"d\",\n{setting}}}"));
        Assert.Contains("run.json:2", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("\"beta\": 0", "beta")]
    [InlineData("\"beta\": -1", "beta")]
    [InlineData("\"desirable_weight\": 0", "desirable_weight")]
    [InlineData("\"max_prompt_length\": 2000", "max_prompt_length")]
    [InlineData("\"lr_scheduler_type\": \"step\"", "lr_scheduler_type")]
    [InlineData("\"warmup_ratio\": 1.5", "warmup_ratio")]
    [InlineData("\"adam_beta1\": 1", "adam_beta1")]
    [InlineData("\"gradient_accumulation_steps\": 0", "gradient_accumulation_steps")]
    [InlineData("\"max_steps\": 0", "max_steps")]
    [InlineData("\"device\": \"gpu\"", "device")]
    [InlineData("\"save_total_limit\": 0", "save_total_limit")]
    public void InvalidValuesAreRejectedNamingTheKey(string setting, string key)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($"{{\"model_name_or_path\": \"m\", \"dataset_path\": \"d\", {setting}}}"));
        Assert.Contains($"\"{key}\"", e.Message);
    }

    [Fact]
    public void BatchOfOneWithTheKlTermIsAnError()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("""{"model_name_or_path": "m", "dataset_path": "d", "per_device_train_batch_size": 1}"""));
        Assert.Contains("batch size must be > 1", e.Message);
        // apo_zero_unpaired has no KL term, so one example per step is fine.
        Assert.Equal(1, Parse("""{"model_name_or_path": "m", "dataset_path": "d", "per_device_train_batch_size": 1, "loss_type": "apo_zero_unpaired"}""").PerDeviceTrainBatchSize);
    }

    [Fact]
    public void MissingRequiredSettingsAreAllListed()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("{}"));
        Assert.Contains("model_name_or_path", e.Message);
        Assert.Contains("dataset_path", e.Message);
    }

    [Fact]
    public void MalformedJsonNamesTheLine()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("{\n\"beta\": 0.1,\n\"seed\": }"));
        Assert.Contains("run.json:3", e.Message);
        Assert.Contains("malformed JSON", e.Message);
    }

    [Fact]
    public void DuplicateKeysAreRejected()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("""{"model_name_or_path": "m", "dataset_path": "d", "beta": 0.1, "beta": 0.2}"""));
        Assert.Contains("set twice", e.Message);
    }

    [Fact]
    public void RelativePathsResolveAgainstTheConfigFolder()
    {
        string dir = Directory.CreateTempSubdirectory("kto-cfg-").FullName;
        try
        {
            string path = Path.Combine(dir, "run.json");
            File.WriteAllText(path, """{"model_name_or_path": "model", "dataset_path": "data/x.jsonl", "output_dir": "/abs/out"}""");
            KtoConfig c = KtoConfigReader.Load(path);
            Assert.Equal(Path.Combine(dir, "model"), c.ModelNameOrPath);
            Assert.Equal(Path.Combine(dir, "data", "x.jsonl"), c.DatasetPath);
            Assert.Equal("/abs/out", c.OutputDir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

public class ShippedConfigTests
{
    private static string RepoFile(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Kto.Cluster.sln"))) dir = dir.Parent;
        return Path.Combine([dir!.FullName, .. parts]);
    }

    [Fact]
    public void TheDefaultsFileListsEveryKeyWithItsDefault()
    {
        string path = RepoFile("config", "run.defaults.json");
        KtoConfig c = KtoConfigReader.Load(path);
        string dir = Path.GetDirectoryName(path)!;
        var expected = new KtoConfig
        {
            ModelNameOrPath = Path.Combine(dir, "path", "to", "checkpoint"),
            DatasetPath = Path.Combine(dir, "path", "to", "feedback.jsonl"),
            OutputDir = Path.Combine(dir, "runs", "kto"),
        };
        Assert.Equal(expected, c);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(KtoConfigReader.Keys.Order(), doc.RootElement.EnumerateObject().Select(p => p.Name).Order());
    }

    [Fact]
    public void TheExampleRunConfigIsValid()
    {
        KtoConfig c = KtoConfigReader.Load(RepoFile("examples", "tiny", "run.json"));
        Assert.True(Directory.Exists(c.ModelNameOrPath));
        Assert.True(File.Exists(c.DatasetPath));
    }
}
