using System.Diagnostics;
using System.Globalization;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>
/// <c>kto up</c> keeps its cluster alive: processes that die are started again, and a coordinator host the cluster
/// downs joins again; the run goes on with both trainers until stopped, and <c>kto up</c> ends with 0. Waits are hang guards, never timings.
/// </summary>
public sealed class LifecycleTests : PaletteTestBase
{
    /// <summary>Starts <c>kto up</c> on the tiny example (2 trainers) and returns it with its coordinator endpoint.</summary>
    private (Process Up, string Endpoint, Task<string> Out, Task<string> Err) StartUp(int maxSteps)
    {
        string runConfig = TinyRun(maxSteps);
        int port = FreePort();
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = Dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "up", runConfig, "--trainers", "2", "--port", port.ToString(CultureInfo.InvariantCulture), "--run-dir", Path.Combine(Dir, "cluster") })
            psi.ArgumentList.Add(a);
        Process up = Process.Start(psi)!;
        return (up, $"127.0.0.1:{port}", up.StandardOutput.ReadToEndAsync(), up.StandardError.ReadToEndAsync());
    }

    private static void KillMatching(string pattern)
    {
        using var pkill = Process.Start("pkill", ["-KILL", "-f", pattern]);
        pkill.WaitForExit();
        Assert.Equal(0, pkill.ExitCode); // a process matched
    }

    private int WaitForExit(Process up)
    {
        if (!up.WaitForExit(TimeSpan.FromMinutes(4))) throw new TimeoutException("kto up did not end");
        return up.ExitCode;
    }

    /// <summary>Resumes the paused run, waits for the new incarnation to commit steps with both trainers, and stops it.</summary>
    private void ResumeAndStop(string endpoint)
    {
        int before = CommittedIn(KtoProcess.Run(Dir, endpoint, "run", "status").Stdout);
        Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "resume").ExitCode);
        Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) > before + 20 && r.Stdout.Contains("members t1,t2", StringComparison.Ordinal), "run", "status");
        Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "stop").ExitCode);
    }

    [Fact]
    public async Task KtoUpRestartsAKilledTrainerAndAKilledCoordinatorAndTheRunGoesOn()
    {
        var (up, endpoint, upOut, upErr) = StartUp(maxSteps: 100000);
        using (up)
        {
            try
            {
                // Paused, so the run cannot end before the processes are back.
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 10, "run", "status");
                Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "pause").ExitCode);
                KillMatching($"{Dir}/cluster/hosts/node.json --node-id t1");
                // back: a second trainer-1 process printed its endpoint, and both trainers are ready again
                string trainerLog = Path.Combine(Dir, "cluster", "logs", "trainer-1.log");
                Until(endpoint, r => File.ReadAllText(trainerLog).Split("ring endpoint").Length == 3
                    && r.Stdout.Split('\n').Count(l => l.Contains("| ready", StringComparison.Ordinal)) == 2, "node", "list");
                KillMatching($"Kto.Cluster.Coordinator.dll --config {Dir}/cluster/hosts/coordinator.json");
                Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Contains("coordinator incarnation 2", StringComparison.Ordinal), "run", "status");
                ResumeAndStop(endpoint);
                int exit = WaitForExit(up);
                string err = await upErr;
                Assert.True(exit == 0, $"kto up exited {exit}: {err}");
                Assert.Contains("trainer-1 exited with code 137", err);
                Assert.Contains("coordinator exited with code 137", err);
                Assert.Contains("restarting it in 1 s", err);
                Assert.Contains("stopped after", await upOut + err);
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task ACoordinatorHostDownedByAnOperatorJoinsAgainAndTheRunGoesOn()
    {
        var (up, endpoint, _, upErr) = StartUp(maxSteps: 100000);
        using (up)
        {
            try
            {
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 10, "run", "status");
                Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "pause").ExitCode); // the run cannot end before the downing
                // The host receives its own downing; its reply may not make it out (exit 3), the downing does.
                var down = KtoProcess.Run(Dir, endpoint, "cluster", "down", $"akka.tcp://kto@{endpoint}");
                Assert.True(down.ExitCode is 0 or 3, down.Stderr);
                Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Contains("paused", StringComparison.Ordinal) && r.Stdout.Contains("coordinator incarnation 2", StringComparison.Ordinal), "run", "status");
                ResumeAndStop(endpoint);
                int exit = WaitForExit(up);
                string err = await upErr;
                Assert.True(exit == 0, $"kto up exited {exit}: {err}");
                string log = File.ReadAllText(Path.Combine(Dir, "cluster", "logs", "coordinator.log"));
                Assert.Contains("joining again as a new incarnation", log);
                Assert.Contains("stopped after", log);
                Assert.DoesNotContain("restarting it", err); // the host came back by itself, not by a restart
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public void ATrainerRegisteredBeforeTheRunStartsLoadsItAndTrains()
    {
        string runConfig = TinyRun(maxSteps: 30);
        int port = FreePort();
        string endpoint = $"127.0.0.1:{port}";
        string seeds = $"[\"akka.tcp://kto@127.0.0.1:{port}\"]";
        string hostConfig = Path.Combine(Dir, "coordinator.json"), nodeConfig = Path.Combine(Dir, "node.json");
        File.WriteAllText(hostConfig, $$"""{"hostname": "127.0.0.1", "port": {{port}}, "seed_nodes": {{seeds}}, "roles": ["coordinator"], "run_dir": "run"}""");
        File.WriteAllText(nodeConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["trainer"]}""");
        using Process coordinator = StartCoordinatorHost(hostConfig, "--run-id", "later");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = Dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.GpuNode.dll"), "node", "--config", nodeConfig, "--node-id", "t1" })
            psi.ArgumentList.Add(a);
        using Process trainer = Process.Start(psi)!;
        _ = trainer.StandardOutput.ReadToEndAsync();
        _ = trainer.StandardError.ReadToEndAsync();
        try
        {
            Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Split('\n').Any(l => l.StartsWith("t1 ", StringComparison.Ordinal)), "node", "list");
            var start = KtoProcess.Run(Dir, endpoint, "run", "start", runConfig);
            Assert.True(start.ExitCode == 0, start.Stderr);
            // the trainer that was there first loads the run and trains it to the end
            Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Contains("run later: completed, 30/30 steps committed", StringComparison.Ordinal), "run", "status");
        }
        finally
        {
            foreach (Process p in new[] { trainer, coordinator })
                if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ASecondLauncherOnTheSameRunDirectoryIsRefusedAtOnce()
    {
        var (up, endpoint, _, upErr) = StartUp(maxSteps: 100000);
        using (up)
        {
            try
            {
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 1, "run", "status");
                string hosts = File.ReadAllText(Path.Combine(Dir, "cluster", "hosts", "coordinator.json"));
                var second = KtoProcess.Run(Dir, "up", Path.Combine(Dir, "run.json"), "--trainers", "1", "--run-dir", Path.Combine(Dir, "cluster"));
                Assert.Equal(1, second.ExitCode);
                Assert.Contains("is in use by another launcher", second.Stderr);
                Assert.Equal(hosts, File.ReadAllText(Path.Combine(Dir, "cluster", "hosts", "coordinator.json"))); // nothing overwritten
                Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "stop").ExitCode);
                int exit = WaitForExit(up);
                Assert.True(exit == 0, $"kto up exited {exit}: {await upErr}");
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>PIDs of processes whose command line holds <paramref name="pattern"/>.</summary>
    private static List<string> Running(string pattern)
    {
        using var pgrep = Process.Start(new ProcessStartInfo("pgrep", ["-f", pattern]) { RedirectStandardOutput = true })!;
        string pids = pgrep.StandardOutput.ReadToEnd();
        pgrep.WaitForExit();
        return [.. pids.Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }

    [Fact]
    public void ALauncherKilledWithSigkillTakesItsClusterDownWithIt()
    {
        var (up, endpoint, _, _) = StartUp(maxSteps: 100000);
        string hosts = Path.Combine(Dir, "cluster", "hosts");
        using (up)
        {
            try
            {
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 5, "run", "status");
                Assert.Equal(3, Running(hosts).Count); // the coordinator and two trainers
                up.Kill(); // SIGKILL: the launcher cannot stop anything itself
                var guard = Stopwatch.StartNew();
                while (Running(hosts).Count > 0)
                {
                    if (guard.Elapsed > TimeSpan.FromMinutes(2)) Assert.Fail($"still running after the launcher was killed: {string.Join(", ", Running(hosts))}");
                    Thread.Sleep(200);
                }
                // (Their output went to the dead launcher, so no log shows it; a new kto up on the directory resumes the run.)
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public void KtoUpOnADamagedJournalEndsAtOnceWithTheCoordinatorsReason()
    {
        var (up, endpoint, _, _) = StartUp(maxSteps: 20);
        using (up)
        {
            Assert.Equal(0, WaitForExit(up));
        }
        string journal = Path.Combine(Dir, "cluster", "journal.sqlite");
        using (var f = new FileStream(journal, FileMode.Open)) f.SetLength(f.Length / 2);
        var again = KtoProcess.Run(Dir, "up", Path.Combine(Dir, "run.json"), "--trainers", "2", "--run-dir", Path.Combine(Dir, "cluster"));
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"journal {journal} is damaged", again.Stderr + again.Stdout);
        Assert.Empty(Running(Path.Combine(Dir, "cluster", "hosts")));
    }
}
