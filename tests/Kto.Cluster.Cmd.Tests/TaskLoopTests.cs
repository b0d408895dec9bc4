using Kto.Cluster.Testing;
using System.Text.Json;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>The task loop end to end through the built tool: synth prompts, generate, label.</summary>
public sealed class TaskLoopTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-loop-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private KtoProcess.Result Kto(params string[] args)
    {
        var r = KtoProcess.Run(_dir, args);
        Assert.True(r.ExitCode == 0, $"kto {string.Join(' ', args)} failed: {r.Stderr}");
        return r;
    }

    private List<JsonElement> Rows(string file) =>
        File.ReadAllLines(Path.Combine(_dir, file)).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private string TinyModel()
    {
        Kto("model", "init", "--out", "model", "--layers", "1", "--heads", "2", "--width", "16", "--positions", "16", "--seed", "3");
        return "model";
    }

    [Fact]
    public void SynthGenerateAndLabelWriteTheirShapesDeterministically()
    {
        string model = TinyModel();
        Kto("data", "synth", "addition", "--kind", "prompts", "--split", "eval", "--count", "6", "--seed", "2", "--out", "prompts.jsonl");
        var prompts = Rows("prompts.jsonl");
        Assert.Equal(6, prompts.Count);
        Assert.All(prompts, p => Assert.Matches(@"^[1-9]\d\+[1-9]\d=$", p.GetProperty("prompt").GetString()));

        string[] sample = ["generate", "--model", model, "--prompts", "prompts.jsonl", "--num-samples", "3", "--max-new-tokens", "4", "--seed", "5", "--threads", "1"];
        Kto([.. sample, "--out", "a.jsonl"]);
        var a = Rows("a.jsonl");
        Assert.Equal(18, a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(i / 3, a[i].GetProperty("prompt_index").GetInt32());
            Assert.Equal(i % 3, a[i].GetProperty("sample").GetInt32());
            Assert.Equal(prompts[i / 3].GetProperty("prompt").GetString(), a[i].GetProperty("prompt").GetString());
            Assert.Equal(JsonValueKind.String, a[i].GetProperty("completion").ValueKind);
        }

        // Same seed, other batch size: the same bytes. Another seed: other completions.
        Kto([.. sample, "--out", "b.jsonl", "--batch-size", "1"]);
        Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "a.jsonl")), File.ReadAllBytes(Path.Combine(_dir, "b.jsonl")));
        Kto([.. sample.Select(x => x == "5" ? "6" : x), "--out", "c.jsonl"]);
        Assert.NotEqual(File.ReadAllText(Path.Combine(_dir, "a.jsonl")), File.ReadAllText(Path.Combine(_dir, "c.jsonl")));

        // Greedy: every sample of a prompt is the same.
        Kto("generate", "--model", model, "--prompts", "prompts.jsonl", "--num-samples", "2", "--temperature", "0", "--out", "g.jsonl");
        var g = Rows("g.jsonl");
        for (int i = 0; i < g.Count; i += 2)
            Assert.Equal(g[i].GetProperty("completion").GetString(), g[i + 1].GetProperty("completion").GetString());

        var label = Kto("data", "label", "addition", "--in", "a.jsonl", "--out", "feedback.jsonl");
        var feedback = Rows("feedback.jsonl");
        int nonEmpty = a.Count(x => x.GetProperty("completion").GetString()!.Length > 0);
        Assert.Equal(nonEmpty, feedback.Count);
        Assert.All(feedback, f => Assert.Equal(JsonValueKind.False, f.GetProperty("label").ValueKind)); // a random model does not add
        Assert.Contains($"labelled {nonEmpty} samples: 0 desirable, {nonEmpty} undesirable", label.Stderr);
    }

    [Fact]
    public void LabelSubsamplesToTheDesirableShareAndWritesRowsKtoCanRead()
    {
        string model = TinyModel();
        var lines = new List<string>();
        for (int i = 0; i < 20; i++)
        {
            int a = 10 + i, b = 30 + i;
            string completion = i % 4 == 0 ? (a + b + 1).ToString() : (a + b).ToString();   // 5 wrong, 15 right
            lines.Add(JsonSerializer.Serialize(new { prompt_index = i, sample = 0, prompt = $"{a}+{b}=", completion }));
        }
        File.WriteAllLines(Path.Combine(_dir, "samples.jsonl"), lines);

        var r = Kto("data", "label", "addition", "--in", "samples.jsonl", "--out", "feedback.jsonl", "--desirable-share", "0.5", "--seed", "1");
        Assert.Contains("labelled 10 samples: 5 desirable, 5 undesirable", r.Stderr);
        var rows = Rows("feedback.jsonl");
        Assert.Equal(10, rows.Count);
        Assert.Equal(5, rows.Count(x => x.GetProperty("label").GetBoolean()));
        var order = rows.Select(x => int.Parse(x.GetProperty("prompt").GetString()!.Split('+')[0]) - 10).ToList();
        Assert.Equal(order.Order(), order);
        Assert.All(rows.Where(x => !x.GetProperty("label").GetBoolean()), x => Assert.Equal(0, (int.Parse(x.GetProperty("prompt").GetString()!.Split('+')[0]) - 10) % 4));

        Kto("data", "label", "addition", "--in", "samples.jsonl", "--out", "again.jsonl", "--desirable-share", "0.5", "--seed", "1");
        Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "feedback.jsonl")), File.ReadAllBytes(Path.Combine(_dir, "again.jsonl")));

        // The feedback is a TRL standard KTO dataset: kto score reads it.
        var score = Kto("score", "--model", model, "--data", "feedback.jsonl");
        Assert.Equal(10, score.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void SynthIsDeterministicAndKeepsEvalProblemsOutOfTraining()
    {
        Kto("data", "synth", "addition", "--kind", "sft", "--split", "train", "--count", "2000", "--seed", "4", "--wrong-share", "0.75", "--out", "sft.jsonl");
        Kto("data", "synth", "addition", "--kind", "sft", "--split", "train", "--count", "2000", "--seed", "4", "--wrong-share", "0.75", "--out", "sft2.jsonl");
        Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "sft.jsonl")), File.ReadAllBytes(Path.Combine(_dir, "sft2.jsonl")));
        var sft = Rows("sft.jsonl");
        Assert.Equal(2000, sft.Count);
        int wrong = sft.Count(x =>
        {
            string[] ab = x.GetProperty("prompt").GetString()!.TrimEnd('=').Split('+');
            return (int.Parse(ab[0]) + int.Parse(ab[1])).ToString() != x.GetProperty("completion").GetString();
        });
        Assert.InRange(wrong, 2000 * 0.75 * 0.7, 2000 * 0.75 * 0.8);   // 3/4 of the ~76 % of problems that carry

        Kto("data", "synth", "addition", "--kind", "prompts", "--split", "eval", "--count", "500", "--seed", "9", "--out", "eval.jsonl");
        var eval = Rows("eval.jsonl").Select(x => x.GetProperty("prompt").GetString()).ToHashSet();
        Assert.Equal(500, eval.Count);
        Assert.DoesNotContain(sft, x => eval.Contains(x.GetProperty("prompt").GetString()));
    }

    [Fact]
    public void BadInputIsAnErrorNamingTheFileAndLine()
    {
        string model = TinyModel();
        File.WriteAllText(Path.Combine(_dir, "bad.jsonl"), "{\"prompt\":\"1+2=\"}\n{\"prompt\":3}\n");
        var r = KtoProcess.Run(_dir, "generate", "--model", model, "--prompts", "bad.jsonl", "--out", "x.jsonl");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("bad.jsonl:line 2: field \"prompt\": expected a string, found integer 3", r.Stderr);

        File.WriteAllText(Path.Combine(_dir, "empty.jsonl"), "{\"prompt\":\"1+2=\"}\n\n{\"prompt\":\"\"}\n");
        r = KtoProcess.Run(_dir, "generate", "--model", model, "--prompts", "empty.jsonl", "--out", "empty-out.jsonl");
        Assert.True(r.ExitCode == 0, r.Stderr); // an empty prompt is the tokenizer's BOS, as in training and scoring
        Assert.Equal(2, File.ReadAllLines(Path.Combine(_dir, "empty-out.jsonl")).Length);

        File.WriteAllText(Path.Combine(_dir, "samples.jsonl"), "{\"prompt\":\"1+2=\",\"completion\":\"3\"}\n{\"prompt\":\"1+2=\"}\n");
        r = KtoProcess.Run(_dir, "data", "label", "addition", "--in", "samples.jsonl", "--out", "x.jsonl");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("samples.jsonl:line 2: field \"completion\": expected a string, found no such field", r.Stderr);

        r = KtoProcess.Run(_dir, "data", "synth", "addition", "--kind", "prompts", "--split", "eval", "--count", "100000", "--seed", "1", "--out", "x.jsonl");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("holds only", r.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "x.jsonl")));
    }
}
