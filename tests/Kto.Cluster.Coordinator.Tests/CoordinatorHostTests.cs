using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The coordinator host as a real process: config errors, cluster start, singleton recovery from the run's SQLite journal.</summary>
public sealed class CoordinatorHostTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-host-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

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

    [Fact]
    public async Task ARunConfigEditedBetweenTwoStartsIsRefusedNamingTheKeysAndNothingIsRewritten()
    {
        int port = FreePort();
        string config = Path.Combine(_dir, "coordinator.json");
        File.WriteAllText(config, $$$"""
            {"hostname": "127.0.0.1", "port": {{{port}}}, "seed_nodes": ["akka.tcp://kto@127.0.0.1:{{{port}}}"],
             "roles": ["coordinator"], "run_dir": "run"}
            """);
        string repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "Kto.Cluster.sln"))) repo = Path.GetDirectoryName(repo)!;
        string tiny = Path.Combine(repo, "examples", "tiny"), output = Path.Combine(_dir, "out"), runConfig = Path.Combine(_dir, "run.json");
        void WriteRun(double lr, int steps) => File.WriteAllText(runConfig, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["model_name_or_path"] = Path.Combine(tiny, "model"), ["dataset_path"] = Path.Combine(tiny, "feedback.jsonl"), ["output_dir"] = output,
            ["learning_rate"] = lr, ["max_steps"] = steps, ["max_length"] = 32, ["max_prompt_length"] = 16,
        }));
        Process StartRun()
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.Coordinator.dll"), "--config", config, "--run-id", "edited", "--run-config", runConfig })
                psi.ArgumentList.Add(a);
            return Process.Start(psi)!;
        }

        WriteRun(1e-4, 50);
        using (Process first = StartRun())
        {
            try
            {
                await WaitForLine(first, "run edited started");
                await StopGracefully(first);
            }
            finally
            {
                if (!first.HasExited) first.Kill(entireProcessTree: true);
            }
        }
        string written = File.ReadAllText(Path.Combine(output, "run_config.json"));
        Assert.Contains("0.0001", written);

        WriteRun(3e-4, 60); // learning_rate and max_steps changed between two starts of the same run
        using Process second = StartRun();
        try
        {
            Task<string> err = second.StandardError.ReadToEndAsync();
            _ = second.StandardOutput.ReadToEndAsync();
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await second.WaitForExitAsync(guard.Token);
            Assert.Equal(HostExitCodes.RunError, second.ExitCode);
            string line = (await err).Split('\n').Single(l => l.StartsWith("error: ", StringComparison.Ordinal));
            Assert.Contains("differs: learning_rate, max_steps", line);
            Assert.Equal(written, File.ReadAllText(Path.Combine(output, "run_config.json"))); // what is on disk is what runs
        }
        finally
        {
            if (!second.HasExited) second.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData("""{"port": 70000, "roles": ["coordinator"]}""", "\"port\"")]
    [InlineData("""{"roles": ["boss"]}""", "\"roles\"")]
    [InlineData("""{"roles": ["coordinator"], "seed_nodes": ["127.0.0.1:9110"]}""", "\"seed_nodes\"")]
    [InlineData("""{"roles": ["coordinator"], "journal": {"provider": "postgres"}}""", "\"journal.connection_string\"")]
    [InlineData("""{"roles": ["coordinator"], "jornal": {}}""", "\"jornal\"")]
    [InlineData("""{"roles": ["trainer"]}""", "\"roles\" must include \"coordinator\"")]
    [InlineData("""{"roles": ["coordinator"], "journal": {"provider": "postgres", "connection_string": "Host=h", "password_env": "KTO_TEST_UNSET_VARIABLE_1"}}""", "\"journal.password_env\"")]
    [InlineData("""{"roles": ["coordinator"], "seed_nodes": ["akka.tcp://kto@127.0.0.1:9110"], "tls": {"certificate": "h.pfx", "ca": "ca.crt"}}""", "akka.ssl.tcp://kto@host:port")]
    [InlineData("""{"roles": ["coordinator"], "tls": {"certificate": "h.pfx"}}""", "\"tls.ca\"")]
    [InlineData("""{"roles": ["coordinator"], "tls": {"certificate": "h.pfx", "ca": "ca.crt", "password": "secret"}}""", "\"tls.password\"")]
    [InlineData("""{"roles": ["coordinator"], "tls": {"certificate": "missing.pfx", "ca": "ca.crt"}}""", "missing.pfx: certificate not found")]
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
