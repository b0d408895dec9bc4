using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Text.Json;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>The alignment loop end to end at a very small size, through the built tool.</summary>
public sealed class DemoTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-demo-").FullName;

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

    private string TinyReference()
    {
        Kto("model", "init", "--out", "ref", "--layers", "1", "--heads", "2", "--width", "16", "--positions", "16", "--seed", "3");
        return Path.Combine(_dir, "ref");
    }

    [Fact]
    public void DemoPipelineRunsEndToEndAtAVerySmallSize()
    {
        string reference = TinyReference();
        var r = Kto("demo", "--reference", reference, "--out", "demo", "--prompts", "24", "--samples-per-prompt", "2",
            "--eval-prompts", "8", "--epochs", "1", "--batch-size", "4", "--threads", "1");
        string outDir = Path.Combine(_dir, "demo");
        Assert.Contains("greedy accuracy (held-out, 8 prompts)", r.Stdout);
        for (int stage = 1; stage <= 7; stage++) Assert.Contains($"[{stage}/7]", r.Stderr);
        foreach (string f in new[] { "samples.jsonl", "feedback.jsonl", "summary.txt", "demo.json", "training_curves.png", "kto/metrics.jsonl" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        byte[] png = File.ReadAllBytes(Path.Combine(outDir, "training_curves.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

        using var demo = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "demo.json")));
        var root = demo.RootElement;
        Assert.Equal(8, root.GetProperty("before").GetProperty("prompts").GetInt32());
        Assert.InRange(root.GetProperty("after").GetProperty("greedy_accuracy").GetDouble(), 0, 1);
        Assert.True(root.GetProperty("after").TryGetProperty("mean_log_ratio", out _));
        Assert.True(root.GetProperty("steps").GetInt32() > 0);

        // The feedback is the checker's verdict on the reference's samples.
        var feedback = File.ReadAllLines(Path.Combine(outDir, "feedback.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(feedback);
        foreach (var row in feedback)
        {
            string prompt = row.GetProperty("prompt").GetString()!;
            string[] ops = prompt.TrimEnd('=').Split('+');
            bool right = row.GetProperty("completion").GetString()!.Trim() == (int.Parse(ops[0]) + int.Parse(ops[1])).ToString();
            Assert.Equal(right, row.GetProperty("label").GetBoolean());
        }
    }

    [Fact]
    public void DemoWithLoraTrainsAnAdapterAndEvaluatesItOnTheReference()
    {
        string reference = TinyReference();
        var r = Kto("demo", "--lora", "--trainers", "0", "--reference", reference, "--out", "demo", "--prompts", "24", "--samples-per-prompt", "2",
            "--eval-prompts", "8", "--epochs", "1", "--batch-size", "4", "--threads", "1");
        Assert.Contains("LoRA: r 16, alpha 32", r.Stderr);
        string kto = Path.Combine(_dir, "demo", "kto");
        string final = Directory.GetDirectories(kto, "checkpoint-*").Single();
        Assert.True(File.Exists(Path.Combine(final, "adapter_config.json")), "the demo's checkpoint is a PEFT adapter");
        Assert.False(File.Exists(Path.Combine(final, "model.safetensors")));
        using var demo = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "demo", "demo.json")));
        Assert.True(demo.RootElement.GetProperty("use_peft").GetBoolean());
        Assert.Equal(0.002, demo.RootElement.GetProperty("learning_rate").GetDouble());
    }

    [Fact]
    public void EvalIsReproducibleAndGradesGreedyAnswers()
    {
        string reference = TinyReference();
        string[] args = ["eval", "--model", reference, "--reference", reference, "--count", "12", "--samples", "3", "--seed", "4", "--threads", "1"];
        var a = Kto(args);
        var b = Kto(args);
        Assert.Equal(a.Stdout, b.Stdout);
        using var doc = JsonDocument.Parse(a.Stdout);
        var root = doc.RootElement;
        Assert.Equal(12, root.GetProperty("prompts").GetInt32());
        Assert.Equal(36, root.GetProperty("samples").GetInt32());
        Assert.Equal(0.0, root.GetProperty("mean_log_ratio").GetDouble(), 9); // a model against itself
        Assert.Equal("addition", root.GetProperty("task").GetString());
    }

    /// <summary>The documented commands that build models/addition-ref, run at a small size.</summary>
    [Fact]
    public void TheReferenceRebuildScriptWorksAtASmallSize()
    {
        string script = Path.Combine(KtoProcess.RepoRoot(), "scripts", "make-addition-reference.sh");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.Environment["KTO"] = $"dotnet {Path.Combine(AppContext.BaseDirectory, "kto.dll")}";
        psi.Environment["OUT"] = Path.Combine(_dir, "ref-out");
        psi.Environment["WORK"] = Path.Combine(_dir, "ref-work");
        psi.Environment["LAYERS"] = "1";
        psi.Environment["HEADS"] = "2";
        psi.Environment["WIDTH"] = "16";
        psi.Environment["SFT_ROWS"] = "64";
        psi.Environment["SFT_STEPS"] = "3";
        psi.Environment["THREADS"] = "1";
        using var p = Process.Start(psi)!;
        string stderr = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, stderr);
        Assert.True(File.Exists(Path.Combine(_dir, "ref-out", "model.safetensors")));
        string config = File.ReadAllText(Path.Combine(_dir, "ref-out", "config.json"));
        Assert.Contains("\"kto_tokenizer\": \"byte\"", config);
        Assert.Contains("\"n_embd\": 16", config);
        // The shipped reference has the sizes the script's defaults give.
        string shipped = File.ReadAllText(Path.Combine(KtoProcess.RepoRoot(), "models", "addition-ref", "config.json"));
        Assert.Contains("\"n_embd\": 128", shipped);
        Assert.Contains("\"n_layer\": 3", shipped);
    }
}
