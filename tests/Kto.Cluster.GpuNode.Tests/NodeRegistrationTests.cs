using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>A coordinator process and a trainer node process form a cluster on loopback; the node registers.</summary>
public sealed class NodeRegistrationTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-nodes-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static Process Start(string dll, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (string a in args) psi.ArgumentList.Add(a);
        Process p = Process.Start(psi)!;
        _ = p.StandardError.ReadToEndAsync(); // drained, so a full pipe never blocks the process
        return p;
    }

    private static Task<string> WaitForLine(Process p, string fragment, CancellationToken guard)
        => WaitForLine(p, l => l.Contains(fragment, StringComparison.Ordinal), guard, $"\"{fragment}\"");

    private static async Task<string> WaitForLine(Process p, Func<string, bool> match, CancellationToken guard, string what = "the line")
    {
        string? line;
        var seen = new System.Text.StringBuilder();
        try
        {
            while ((line = await p.StandardOutput.ReadLineAsync(guard)) is not null)
            {
                if (match(line)) return line;
                seen.AppendLine(line);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"gave up waiting for {what}; the process printed:\n{seen}");
        }
        throw new InvalidOperationException($"process ended without printing {what}; it printed:\n{seen}");
    }

    [Fact]
    public async Task ATrainerNodeJoinsTheClusterAndRegistersWithTheCoordinatorSingleton()
    {
        int port = LocalCluster.FreePort(), dataPort = LocalCluster.FreePort();
        string seeds = $"[\"akka.tcp://kto@127.0.0.1:{port}\"]";
        string coordinatorConfig = Path.Combine(_dir, "coordinator.json");
        File.WriteAllText(coordinatorConfig, $$$"""{"hostname": "127.0.0.1", "port": {{{port}}}, "seed_nodes": {{{seeds}}}, "roles": ["coordinator"], "run_dir": "run"}""");
        string nodeConfig = Path.Combine(_dir, "node.json");
        File.WriteAllText(nodeConfig, $$$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{{seeds}}}, "roles": ["trainer"]}""");

        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2)); // a hang fails the test instead of blocking the suite
        using Process coordinator = Start("Kto.Cluster.Coordinator.dll", "--config", coordinatorConfig, "--run-id", "demo");
        Process? node = null;
        try
        {
            await WaitForLine(coordinator, "coordinator ready", guard.Token);
            node = Start("Kto.Cluster.GpuNode.dll", "node", "--config", nodeConfig, "--trainer-id", "t1", "--data-endpoint", $"127.0.0.1:{dataPort}");
            string registered = await WaitForLine(node, "registered with the coordinator", guard.Token);
            Assert.Contains("1 trainers", registered);
            string seen = await WaitForLine(coordinator, "trainer t1 registered", guard.Token);
            Assert.Contains($"127.0.0.1:{dataPort}", seen);

            // kill -9 the node: the coordinator drops it from step membership once the failure detector reports it
            // unreachable, without waiting for the cluster to down it. (Time is reported, not asserted.)
            var clock = Stopwatch.StartNew();
            node.Kill();
            // Either signal may come first: the failure detector's "unreachable", or the death watch's "lost" when the
            // reset connection ends the association (then the trainer is gone before it is reported unreachable).
            string excluded = await WaitForLine(coordinator, l => l.Contains("trainer t1 unreachable: excluded", StringComparison.Ordinal)
                || l.Contains("trainer t1 lost", StringComparison.Ordinal), guard.Token);
            output.WriteLine($"kill -9 to exclusion: {clock.Elapsed.TotalSeconds:0.0} s ({excluded})");
            Assert.Contains(excluded.Contains("lost", StringComparison.Ordinal) ? "(0 trainers)" : "0 usable trainers", excluded);
        }
        finally
        {
            if (node is { HasExited: false }) node.Kill(entireProcessTree: true);
            if (!coordinator.HasExited) coordinator.Kill(entireProcessTree: true);
            node?.Dispose();
        }
    }
}
