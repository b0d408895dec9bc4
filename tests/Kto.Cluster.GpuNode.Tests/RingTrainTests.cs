using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// Separate trainer processes on loopback, reducing KL and gradients over the TCP ring, end with the weights of one
/// process training the same config.
/// </summary>
public sealed class RingTrainTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-ring-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string WriteRun()
    {
        string model = Path.Combine(_dir, "model");
        using (var g = new torch.Generator(3))
        using (var m = new GptLmHeadModel(new GptConfig(257, 24, 16, 1, 2, Tokenizer: "byte"), g))
            ModelCheckpoint.Save(m, model);
        var rng = new Random(17);
        File.WriteAllLines(Path.Combine(_dir, "data.jsonl"), Enumerable.Range(0, 30).Select(_ =>
        {
            int a = rng.Next(1, 30), b = rng.Next(1, 30);
            bool good = rng.NextDouble() < 0.4;
            return JsonSerializer.Serialize(new { prompt = $"{a}+{b}=", completion = (good ? a + b : a + b + rng.Next(1, 9)).ToString(), label = good });
        }));
        string config = Path.Combine(_dir, "run.json");
        File.WriteAllText(config, """
            {"model_name_or_path": "model", "dataset_path": "data.jsonl", "output_dir": "single",
             "learning_rate": 0.003, "lr_scheduler_type": "cosine", "warmup_steps": 2, "per_device_train_batch_size": 6,
             "gradient_accumulation_steps": 2, "max_steps": 20, "max_length": 16, "max_prompt_length": 8,
             "logging_steps": 5, "save_steps": 1000, "num_threads": 1, "seed": 7}
            """);
        return config;
    }

    [Fact]
    public async Task TwoTrainerProcessesMatchOneProcess()
    {
        string config = WriteRun();
        KtoConfig c = KtoConfigReader.Load(config);
        using (TrainingSetup setup = TrainingSetup.Prepare(c, NullObserver.Instance))
            new KtoTrainer(setup, NullObserver.Instance).Run();
        var expected = LocalCluster.Weights(TrainingCheckpoint.Latest(c.OutputDir)!);

        const int n = 2;
        string members = string.Join(',', Enumerable.Range(0, n).Select(_ => $"127.0.0.1:{LocalCluster.FreePort()}"));
        var processes = Enumerable.Range(0, n).Select(rank =>
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.GpuNode.dll"), "ring-train", "--config", config,
                         "--rank", rank.ToString(), "--members", members, "--out", Path.Combine(_dir, $"rank{rank}") })
                psi.ArgumentList.Add(a);
            return Process.Start(psi)!;
        }).ToList();
        var outputs = processes.Select(p => (Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync())).ToList();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            foreach (var p in processes) await p.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            foreach (var p in processes.Where(p => !p.HasExited)) p.Kill(entireProcessTree: true);
        }
        string[] stdout = await Task.WhenAll(outputs.Select(o => o.Out));
        string[] stderr = await Task.WhenAll(outputs.Select(o => o.Err));
        for (int r = 0; r < n; r++)
            Assert.True(processes[r].ExitCode == 0, $"rank {r}: {stderr[r]}");

        // Same reduced-gradient checksum on every member at every step, bit-identical final replicas.
        string[][] checksums = [.. stdout.Select(o => o.Split('\n').Where(l => l.StartsWith("step ", StringComparison.Ordinal)).Select(l => l.Split(' ')[^1]).ToArray())];
        Assert.Equal(20, checksums[0].Length);
        Assert.Equal(checksums[0], checksums[1]);
        var w0 = LocalCluster.Weights(Path.Combine(_dir, "rank0"));
        Assert.Equal(0.0, LocalCluster.RelativeL2(w0, LocalCluster.Weights(Path.Combine(_dir, "rank1"))));
        double rel = LocalCluster.RelativeL2(expected, w0);
        Assert.True(rel < 1e-5, $"relative L2 distance to the single-process weights: {rel:E2}");
    }

    [Fact]
    public async Task AKilledTrainerEndsTheFixedRingWithAClearErrorInsteadOfAHang()
    {
        string config = WriteRun();
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"max_steps\": 20", "\"max_steps\": 100000", StringComparison.Ordinal));
        string members = $"127.0.0.1:{LocalCluster.FreePort()},127.0.0.1:{LocalCluster.FreePort()}";
        var processes = Enumerable.Range(0, 2).Select(rank =>
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.GpuNode.dll"), "ring-train", "--config", config,
                         "--rank", rank.ToString(), "--members", members, "--out", Path.Combine(_dir, $"rank{rank}") })
                psi.ArgumentList.Add(a);
            return Process.Start(psi)!;
        }).ToList();
        try
        {
            // Wait until the ring is training, then kill -9 rank 1.
            string? line;
            while ((line = await processes[1].StandardOutput.ReadLineAsync()) is not null && !line.StartsWith("step 3/", StringComparison.Ordinal)) { }
            Assert.NotNull(line);
            processes[1].Kill();
            Task<string> err = processes[0].StandardError.ReadToEndAsync();
            _ = processes[0].StandardOutput.ReadToEndAsync();
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2)); // a hang fails the test instead of blocking the suite
            await processes[0].WaitForExitAsync(guard.Token);
            Assert.Equal(Program.RingBroken, processes[0].ExitCode);
            Assert.Contains("the ring broke", await err);
        }
        finally
        {
            foreach (var p in processes.Where(p => !p.HasExited)) p.Kill(entireProcessTree: true);
        }
    }
}
