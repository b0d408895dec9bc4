using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The coordinator host as a real process: config errors, cluster start, singleton recovery from the run's SQLite journal.</summary>
public sealed class CoordinatorHostTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-host-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private Process Start(string config, string runId)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.Coordinator.dll"), "--config", config, "--run-id", runId })
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static async Task<string> WaitForLine(Process p, string fragment)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2)); // a hang fails the test instead of blocking the suite
        string? line;
        while ((line = await p.StandardOutput.ReadLineAsync(guard.Token)) is not null)
            if (line.Contains(fragment, StringComparison.Ordinal)) return line;
        throw new InvalidOperationException($"the host ended without printing \"{fragment}\": {await p.StandardError.ReadToEndAsync()}");
    }

    private static async Task StopGracefully(Process p)
    {
        using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) await kill.WaitForExitAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await p.WaitForExitAsync(guard.Token);
    }

    [Fact]
    public void TheShippedHostConfigsLoadAndPointTheNodeAtTheCoordinator()
    {
        string repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "Kto.Cluster.sln"))) repo = Path.GetDirectoryName(repo)!;
        var coordinator = Kto.Cluster.Core.HostConfig.Load(Path.Combine(repo, "config", "coordinator.json"));
        var node = Kto.Cluster.Core.HostConfig.Load(Path.Combine(repo, "config", "node.json"));
        Assert.Equal(["coordinator"], coordinator.Roles);
        Assert.Equal(["trainer"], node.Roles);
        Assert.Equal(coordinator.SeedNodes, node.SeedNodes);
        var scorer = Kto.Cluster.Core.HostConfig.Load(Path.Combine(repo, "config", "scorer.json"));
        Assert.Equal(["scorer"], scorer.Roles);
        Assert.Equal(coordinator.SeedNodes, scorer.SeedNodes);
        Assert.Equal($"akka.tcp://kto@{coordinator.Hostname}:{coordinator.Port}", coordinator.SeedNodes[0]);
    }

    [Fact]
    public async Task TheSingletonRecoversTheRunJournalAcrossHostRestarts()
    {
        int port = FreePort();
        string config = Path.Combine(_dir, "coordinator.json");
        File.WriteAllText(config, $$$"""
            {"hostname": "127.0.0.1", "port": {{{port}}}, "seed_nodes": ["akka.tcp://kto@127.0.0.1:{{{port}}}"],
             "roles": ["coordinator"], "run_dir": "run", "journal": {"provider": "sqlite"}}
            """);
        foreach (int incarnation in new[] { 1, 2 })
        {
            using Process host = Start(config, "demo");
            try
            {
                string ready = await WaitForLine(host, "coordinator ready");
                Assert.Contains($"incarnation {incarnation}", ready);
                await StopGracefully(host);
                Assert.Equal(0, host.ExitCode);
            }
            finally
            {
                if (!host.HasExited) host.Kill(entireProcessTree: true);
            }
        }
        Assert.True(File.Exists(Path.Combine(_dir, "run", "journal.sqlite")));
    }

    [Theory]
    [InlineData("""{"port": 70000, "roles": ["coordinator"]}""", "\"port\"")]
    [InlineData("""{"roles": ["boss"]}""", "\"roles\"")]
    [InlineData("""{"roles": ["coordinator"], "seed_nodes": ["127.0.0.1:9110"]}""", "\"seed_nodes\"")]
    [InlineData("""{"roles": ["coordinator"], "journal": {"provider": "postgres"}}""", "\"journal.connection_string\"")]
    [InlineData("""{"roles": ["coordinator"], "jornal": {}}""", "\"jornal\"")]
    [InlineData("""{"roles": ["trainer"]}""", "\"roles\" must include \"coordinator\"")]
    public async Task ABadHostConfigStopsTheHostNamingTheKey(string json, string named)
    {
        string config = Path.Combine(_dir, "bad.json");
        File.WriteAllText(config, json);
        using Process host = Start(config, "demo");
        string err = await host.StandardError.ReadToEndAsync();
        await host.WaitForExitAsync();
        Assert.Equal(Program.BadConfig, host.ExitCode);
        Assert.Contains("bad.json", err);
        Assert.Contains(named, err);
    }
}
