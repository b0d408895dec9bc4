using System.Diagnostics;
using System.Globalization;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>
/// <c>kto up</c> keeps its cluster alive: processes that die are started again, and a coordinator host the cluster
/// downs joins again; the run completes and <c>kto up</c> ends with 0. Waits are hang guards, never timings.
/// </summary>
public sealed partial class PaletteTests
{
    /// <summary>Starts <c>kto up</c> on the tiny example (2 trainers) and returns it with its coordinator endpoint.</summary>
    private (Process Up, string Endpoint, Task<string> Out, Task<string> Err) StartUp(int maxSteps)
    {
        string runConfig = TinyRun(maxSteps);
        int port = FreePort();
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = _dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "up", runConfig, "--trainers", "2", "--port", port.ToString(CultureInfo.InvariantCulture), "--run-dir", Path.Combine(_dir, "cluster") })
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

    [Fact]
    public async Task KtoUpRestartsAKilledTrainerAndAKilledCoordinatorAndTheRunCompletes()
    {
        var (up, endpoint, upOut, upErr) = StartUp(maxSteps: 300);
        using (up)
        {
            try
            {
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 10, "run", "status");
                KillMatching($"{_dir}/cluster/hosts/node.json --node-id t1");
                Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Contains("members t1,t2", StringComparison.Ordinal) && CommittedIn(r.Stdout) >= 40, "run", "status");
                KillMatching($"Kto.Cluster.Coordinator.dll --config {_dir}/cluster/hosts/coordinator.json");
                int exit = WaitForExit(up);
                string err = await upErr;
                Assert.True(exit == 0, $"kto up exited {exit}: {err}");
                Assert.Contains("trainer-1 exited with code 137", err);
                Assert.Contains("coordinator exited with code 137", err);
                Assert.Contains("restarting it in 1 s", err);
                Assert.Contains("complete: 300 steps", await upOut + err);
                string log = File.ReadAllText(Path.Combine(_dir, "cluster", "logs", "coordinator.log"));
                Assert.Contains("incarnation 2", log);
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task ACoordinatorHostDownedByAnOperatorJoinsAgainAndTheRunCompletes()
    {
        var (up, endpoint, _, upErr) = StartUp(maxSteps: 300);
        using (up)
        {
            try
            {
                Until(endpoint, r => r.ExitCode == 0 && CommittedIn(r.Stdout) >= 10, "run", "status");
                // The host receives its own downing; its reply may not make it out (exit 3), the downing does.
                var down = KtoProcess.Run(_dir, endpoint, "cluster", "down", $"akka.tcp://kto@{endpoint}");
                Assert.True(down.ExitCode is 0 or 3, down.Stderr);
                int exit = WaitForExit(up);
                string err = await upErr;
                Assert.True(exit == 0, $"kto up exited {exit}: {err}");
                string log = File.ReadAllText(Path.Combine(_dir, "cluster", "logs", "coordinator.log"));
                Assert.Contains("joining again as a new incarnation", log);
                Assert.Contains("incarnation 2", log);
                Assert.Contains("complete: 300 steps", log);
                Assert.DoesNotContain("restarting it", err); // the host came back by itself, not by a restart
            }
            finally
            {
                if (!up.HasExited) up.Kill(entireProcessTree: true);
            }
        }
    }
}
