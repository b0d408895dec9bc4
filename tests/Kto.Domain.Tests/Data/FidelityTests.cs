using System.Text.Json.Nodes;
using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Domain.Tests.Data;

/// <summary>Faults other KTO trainers had, each with its right value: EOS once, empty prompts, special-token ids, identical pairs, config lines.</summary>
public sealed class FidelityTests : IDisposable
{
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EosIsAppendedOnceEvenWhenTheCompletionTextEndsWithIt()
    {
        string path = _dir.Jsonl("eos.jsonl",
            """{"prompt": "1+1=", "completion": " 2<|endoftext|>", "label": true}""",
            """{"prompt": "1+1=", "completion": " 2", "label": false}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, Gpt2Tokenizer.Instance, Roomy);
        Assert.Equal([362, 50256], d.Examples[0].CompletionIds); // " 2" is 362 in GPT-2's BPE
        Assert.Equal([362, 50256], d.Examples[1].CompletionIds);

        LoadedDataset bytes = KtoDatasetLoader.Load(_dir.Jsonl("b.jsonl", """{"prompt": "a", "completion": "bc", "label": true}"""), ByteTokenizer.Instance, Roomy);
        Assert.Equal([98, 99, ByteTokenizer.Eos], bytes.Examples[0].CompletionIds);
    }

    [Fact]
    public void AnEmptyPromptBecomesBosSoTheFirstCompletionTokenIsScored()
    {
        string text = _dir.Jsonl("empty.jsonl", """{"prompt": "", "completion": "7", "label": true}""", """{"prompt": "x", "completion": "8", "label": false}""");
        string ids = _dir.Jsonl("empty-ids.jsonl", """{"prompt_ids": [], "completion_ids": [55], "label": true}""", """{"prompt_ids": [3], "completion_ids": [56], "label": false}""");
        KtoExample fromText = KtoDatasetLoader.Load(text, Gpt2Tokenizer.Instance, Roomy).Examples[0];
        KtoExample fromIds = KtoDatasetLoader.Load(ids, Gpt2Tokenizer.Instance, Roomy).Examples[0];
        Assert.Equal([50256], fromText.PromptIds); // GPT-2's bos_token_id
        Assert.Equal([50256], fromIds.PromptIds);
        Assert.Equal([55], fromIds.CompletionIds);

        // The one completion token is scored: its log-prob is that of the model after BOS, not 0.
        using var g = new torch.Generator(1);
        using var model = new GptLmHeadModel(new GptConfig(257, 16, 16, 1, 2, Tokenizer: "byte"), g);
        KtoExample e = KtoDatasetLoader.Load(_dir.Jsonl("one.jsonl", """{"prompt_ids": [], "completion_ids": [65], "label": true}""", """{"prompt_ids": [1], "completion_ids": [66], "label": false}"""),
            ByteTokenizer.Instance, Roomy).Examples[0];
        ReferenceLogps scored = ReferenceScoring.Score(model, [new TrainItem(0, e, [1], [66])], ByteTokenizer.Eos, torch.CPU, scoreKl: false)[0];
        using (torch.no_grad())
        using (var logits = model.forward(torch.tensor(new long[] { ByteTokenizer.Eos }).unsqueeze(0)))
        {
            double expected = logits.log_softmax(-1)[0, 0, 65].ToDouble();
            Assert.Equal(expected, scored.Completion, 5);
        }
        Assert.NotEqual(0, scored.Completion);
    }

    [Fact]
    public void SavedCheckpointsNameTheTokenizersSpecialTokensAndKeepTheirOwn()
    {
        using var g = new torch.Generator(2);
        using var padded = new GptLmHeadModel(new GptConfig(300, 16, 16, 1, 2, Tokenizer: "byte"), g);
        string dir = Path.Combine(_dir.Root, "padded");
        ModelCheckpoint.Save(padded, dir);
        JsonNode config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        Assert.Equal(256, config["bos_token_id"]!.GetValue<int>()); // the byte tokenizer's, not vocab_size - 1 = 299
        Assert.Equal(256, config["eos_token_id"]!.GetValue<int>());

        // A checkpoint's own ids (here a list, as some Hub configs have) are kept through load and save.
        config["bos_token_id"] = 7;
        config["eos_token_id"] = new JsonArray(9, 10);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        using var loaded = ModelCheckpoint.Load(dir);
        Assert.Equal((7, 9), ((GptConfig)loaded.LmConfig).SpecialIds());
        string again = Path.Combine(_dir.Root, "again");
        ModelCheckpoint.Save(loaded, again);
        JsonNode saved = JsonNode.Parse(File.ReadAllText(Path.Combine(again, "config.json")))!;
        Assert.Equal((7, 9), (saved["bos_token_id"]!.GetValue<int>(), saved["eos_token_id"]!.GetValue<int>()));

        // Our own earlier checkpoints stated vocab_size - 1: read as the tokenizer's.
        config["bos_token_id"] = 299;
        config["eos_token_id"] = 299;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        Assert.Equal((256, 256), ((GptConfig)ModelCheckpoint.LoadConfig(dir)).SpecialIds());
        Assert.Equal((50256, 50256), GptConfig.Gpt2Small.SpecialIds());
    }

    [Fact]
    public void PairedRowsWhoseChosenEqualsRejectedAreDroppedAndCounted()
    {
        string path = _dir.Jsonl("pairs.jsonl",
            """{"prompt": "q", "chosen": "same", "rejected": "same"}""",
            """{"prompt": "q", "chosen": "good", "rejected": "bad"}""",
            """{"prompt": "r", "chosen": "x<|endoftext|>", "rejected": "x"}""");
        LoadedDataset d = KtoDatasetLoader.Load(path, Gpt2Tokenizer.Instance, Roomy);
        Assert.Equal(2, d.Examples.Count); // only the second row's two examples
        Assert.All(d.Examples, e => Assert.Equal(2, e.SourceRow));
        Assert.Equal(2, d.DroppedIdenticalPairs); // the third is the same ids once EOS is not doubled
        Assert.Contains(d.Warnings, w => w.Contains("2 paired row(s) dropped: chosen equals rejected", StringComparison.Ordinal));

        string all = _dir.Jsonl("all-same.jsonl", """{"prompt": "q", "chosen": "s", "rejected": "s"}""");
        var error = Assert.Throws<DataException>(() => KtoDatasetLoader.Load(all, Gpt2Tokenizer.Instance, Roomy));
        Assert.Contains("all 1 paired rows dropped: chosen equals rejected", error.Message);
    }

    [Fact]
    public void EveryConfigValueErrorNamesFileLineAndKey()
    {
        string Fails(string json)
        {
            string path = Path.Combine(_dir.Root, "run.json");
            File.WriteAllText(path, json);
            return Assert.Throws<ConfigException>(() => KtoConfigReader.Load(path)).Message;
        }
        string run = Path.Combine(_dir.Root, "run.json");
        string message = Fails("{\n  \"model_name_or_path\": \"m\",\n  \"dataset_path\": \"d.jsonl\",\n  \"beta\": -0.1\n}");
        Assert.Equal($"{run}:4: \"beta\" must be a positive number, got -0.1", message);

        // A relation between two keys is reported at the line of the one the file sets.
        message = Fails("{\"model_name_or_path\": \"m\",\n\"dataset_path\": \"d.jsonl\",\n\"max_length\": 64}");
        Assert.Equal($"{run}:3: \"max_prompt_length\" (512) must be below max_length (64) to leave room for a completion", message);
        message = Fails("{\"model_name_or_path\": \"m\",\n\"dataset_path\": \"d.jsonl\",\n\"max_length\": 64,\n\"max_prompt_length\": 64}");
        Assert.Equal($"{run}:4: \"max_prompt_length\" (64) must be below max_length (64) to leave room for a completion", message);

        // Several problems: one line each.
        message = Fails("{\"model_name_or_path\": \"m\",\n\"dataset_path\": \"d.jsonl\",\n\"beta\": 0,\n\"save_steps\": 0}");
        Assert.Equal([$"{run}:3: \"beta\" must be a positive number, got 0", $"{run}:4: \"save_steps\" must be at least 1, got 0"], message.Split('\n'));
        // A value the file does not set (a default) is named as such.
        message = Fails("{\"model_name_or_path\": \"m\",\n\"dataset_path\": \"d.jsonl\",\n\"loss_type\": \"kto\",\n\"per_device_train_batch_size\": 1}");
        Assert.StartsWith($"{run}:4: \"per_device_train_batch_size\" is 1", message);
    }

    [Fact]
    public void TokenizedIdsAreCheckedAgainstTheModelsVocabularyNotTheTokenizers()
    {
        // A model whose vocabulary is padded to 300 past the byte tokenizer's 257 ids: every id below 300 is valid for it.
        string ok = _dir.Jsonl("padded.jsonl", """{"prompt_ids": [275, 1], "completion_ids": [299], "label": true}""", """{"prompt_ids": [2], "completion_ids": [3], "label": false}""");
        var options = Roomy with { ModelVocabSize = 300 };
        Assert.Equal([275, 1], KtoDatasetLoader.Load(ok, ByteTokenizer.Instance, options).Examples[0].PromptIds);

        string bad = _dir.Jsonl("past.jsonl", """{"prompt_ids": [1], "completion_ids": [300], "label": true}""");
        var e = Assert.Throws<DataException>(() => KtoDatasetLoader.Load(bad, ByteTokenizer.Instance, options));
        Assert.Contains("line 1: field \"completion_ids\": expected token ids in [0, 300) for the model's vocab_size, found integer 300 at index 0", e.Message);
        // Without a model (the tokenizer alone), its own size is the limit.
        Assert.Contains("[0, 257) for tokenizer \"byte\"", Assert.Throws<DataException>(() => KtoDatasetLoader.Load(ok, ByteTokenizer.Instance, Roomy)).Message);
    }
}
