using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>
/// The pbm-style palettes against a real local cluster (<c>kto up</c>: a coordinator and 2 trainer processes), each
/// command run as its own <c>kto HOST:PORT …</c> process, as an operator would. Waits are hang guards, never timings.
/// </summary>
public sealed class PaletteTests : PaletteTestBase
{
    [Fact]
    public void AnOperatorInspectsPausesCheckpointsDrainsAndStopsARunningCluster()
    {
        string runConfig = TinyRun(maxSteps: 100000);
        int port = FreePort();
        string endpoint = $"127.0.0.1:{port}";
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = Dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "up", runConfig, "--trainers", "2", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--run-dir", Path.Combine(Dir, "cluster") })
            psi.ArgumentList.Add(a);
        using Process up = Process.Start(psi)!;
        Task<string> upOut = up.StandardOutput.ReadToEndAsync();
        Task<string> upErr = up.StandardError.ReadToEndAsync();
        try
        {
            // Both trainers in the steps.
            var status = Until(endpoint, r => r.ExitCode == 0 && r.Stdout.Contains("members t1,t2", StringComparison.Ordinal), "run", "status");
            Assert.Contains("run run: running", status.Stdout);

            var show = KtoProcess.Run(Dir, endpoint, "cluster", "show");
            Assert.Equal(0, show.ExitCode);
            string[] rows = show.Stdout.Trim().Split('\n');
            Assert.Matches(@"^address\s+\| roles\s+\| status \| unreachable$", rows[0]);
            Assert.Equal(3, rows.Length - 1);
            Assert.Single(rows, r => r.Contains($"akka.tcp://kto@127.0.0.1:{port} ", StringComparison.Ordinal) && r.Contains("| [coordinator] |", StringComparison.Ordinal) && r.Contains("| Up ", StringComparison.Ordinal));
            Assert.Equal(2, rows.Count(r => r.Contains("| [trainer]", StringComparison.Ordinal) && r.EndsWith("| false", StringComparison.Ordinal)));

            var nodes = KtoProcess.Run(Dir, endpoint, "node", "list");
            Assert.Equal(0, nodes.ExitCode);
            Assert.Contains(nodes.Stdout.Split('\n'), l => l.StartsWith("t1 ", StringComparison.Ordinal) && l.Contains("| trainer |", StringComparison.Ordinal));
            Assert.Contains(nodes.Stdout.Split('\n'), l => l.StartsWith("t2 ", StringComparison.Ordinal));

            // Pause: the reply names the committed steps, and nothing more is committed while paused.
            var pause = KtoProcess.Run(Dir, endpoint, "run", "pause");
            Assert.Equal(0, pause.ExitCode);
            int pausedAt = int.Parse(Regex.Match(pause.Stdout, @"paused at (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            var paused = KtoProcess.Run(Dir, endpoint, "run", "status");
            Assert.Contains("run run: paused", paused.Stdout);
            Assert.Equal(pausedAt, CommittedIn(paused.Stdout));
            Assert.Contains("in flight: nothing", paused.Stdout);
            Assert.Equal(1, KtoProcess.Run(Dir, endpoint, "run", "pause").ExitCode); // already paused: refused

            // A checkpoint on request, recorded in the journal and on disk.
            Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "checkpoint").ExitCode);
            Until(endpoint, r => r.Stdout.Contains($"checkpoint after step {pausedAt} recorded", StringComparison.Ordinal), "run", "tail", "--once");
            Assert.True(Directory.Exists(Path.Combine(Dir, "out", $"checkpoint-{pausedAt}")));
            Assert.Equal(pausedAt, CommittedIn(KtoProcess.Run(Dir, endpoint, "run", "status").Stdout));

            Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "run", "resume").ExitCode);
            Until(endpoint, r => CommittedIn(r.Stdout) > pausedAt, "run", "status");

            // Drain: t2 finishes its step, is let go and stops; the steps go on with t1.
            var unknown = KtoProcess.Run(Dir, endpoint, "node", "drain", "t9");
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("no trainer \"t9\" is registered", unknown.Stderr);
            Assert.Equal(0, KtoProcess.Run(Dir, endpoint, "node", "drain", "t2").ExitCode);
            Until(endpoint, r => r.Stdout.Split('\n').Any(l => l.Contains(" committed:", StringComparison.Ordinal) && l.Contains("members t1 ", StringComparison.Ordinal)), "run", "tail", "--once");
            var afterDrain = Until(endpoint, r => !r.Stdout.Split('\n').Any(l => l.StartsWith("t2 ", StringComparison.Ordinal)), "node", "list");
            Assert.Contains(afterDrain.Stdout.Split('\n'), l => l.StartsWith("t1 ", StringComparison.Ordinal));
            Assert.Equal("no unreachable members", KtoProcess.Run(Dir, endpoint, "cluster", "down-unreachable").Stdout.Trim());

            // cluster status and cluster leader: this host's row, and who leads what.
            var self = KtoProcess.Run(Dir, endpoint, "cluster", "status");
            Assert.True(self.ExitCode == 0, self.Stderr);
            string[] selfLines = self.Stdout.TrimEnd().Split('\n');
            Assert.Matches(@"^address\s+\| roles\s+\| status \| unreachable$", selfLines[0]);
            Assert.Matches($@"^akka\.tcp://kto@127\.0\.0\.1:{port} \| \[coordinator\] \| Up\s+\| false$", selfLines[1]);
            Assert.Contains("run coordinator singleton: on this host", self.Stdout);
            var leader = KtoProcess.Run(Dir, endpoint, "cluster", "leader");
            Assert.True(leader.ExitCode == 0, leader.Stderr);
            string[] leaderLines = leader.Stdout.TrimEnd().Split('\n');
            Assert.Matches(@"^leader of\s+\| address$", leaderLines[0]);
            Assert.Matches(@"^cluster\s+\| akka\.tcp://kto@127\.0\.0\.1:\d+$", leaderLines[1]);
            Assert.Contains(leaderLines, l => Regex.IsMatch(l, @"^role coordinator\s+\| akka\.tcp://kto@127\.0\.0\.1:" + port + "$"));
            Assert.Contains(leaderLines, l => Regex.IsMatch(l, @"^role trainer\s+\| akka\.tcp://kto@127\.0\.0\.1:\d+$"));
            Assert.Matches($@"^run coordinator singleton \| akka\.tcp://kto@127\.0\.0\.1:{port}$", leaderLines[^1]);

            // run history: the journal as step | event | details, in step order, holding what this test did.
            var history = KtoProcess.Run(Dir, endpoint, "run", "history");
            Assert.True(history.ExitCode == 0, history.Stderr);
            string[] rowsOfHistory = history.Stdout.TrimEnd().Split('\n');
            Assert.Matches(@"^step \| event\s+\| details$", rowsOfHistory[0]);
            Assert.Single(rowsOfHistory, l => l.StartsWith("step ", StringComparison.Ordinal)); // pages (≤ 48,000 characters each) join into one table
            Assert.DoesNotContain(rowsOfHistory, l => l.Length == 0);
            var entries = rowsOfHistory[1..].Select(l => l.Split(" | ")).ToList();
            Assert.All(entries, e => Assert.Equal(3, e.Length));
            var steps = entries.Select(e => int.Parse(e[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(steps.Order(), steps);
            Assert.Equal(("coordinator", true), (entries[0][1].Trim(), entries[0][2].StartsWith("incarnation 1 (first start)", StringComparison.Ordinal)));
            Assert.Equal(("run started", "run: 100000 steps of 8 examples × 1 micro-batches, 96 examples"), (entries[1][1].Trim(), entries[1][2]));
            Assert.Contains(entries, e => e[1].Trim() == "committed" && e[2].Contains("members t1,t2", StringComparison.Ordinal));
            Assert.Contains(entries, e => e[0].Trim() == $"{pausedAt}" && e[1].Trim() == "paused" && e[2] == "by an operator");
            Assert.Contains(entries, e => e[0].Trim() == $"{pausedAt}" && e[1].Trim() == "checkpoint" && e[2].EndsWith($"checkpoint-{pausedAt}", StringComparison.Ordinal));
            Assert.Contains(entries, e => e[1].Trim() == "resumed");
            Assert.Contains(entries, e => e[1].Trim() == "committed" && e[2].Contains("members t1; left t2", StringComparison.Ordinal));
            var committedSteps = entries.Where(e => e[1].Trim() == "committed").Select(e => int.Parse(e[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(Enumerable.Range(1, committedSteps.Count), committedSteps); // each step once, none missing
            var since = KtoProcess.Run(Dir, endpoint, "run", "history", "--since", $"{pausedAt}");
            Assert.True(since.ExitCode == 0, since.Stderr);
            var sinceEntries = since.Stdout.TrimEnd().Split('\n')[1..].Select(l => l.Split(" | ")).ToList();
            Assert.All(sinceEntries, e => Assert.True(int.Parse(e[0], System.Globalization.CultureInfo.InvariantCulture) >= pausedAt, string.Join(" | ", e)));
            Assert.Contains(sinceEntries, e => e[1].Trim() == "paused");
            Assert.Equal(2, KtoProcess.Run(Dir, endpoint, "run", "history", "--since", "soon").ExitCode);

            // Usage errors.
            Assert.Equal(2, KtoProcess.Run(Dir, endpoint, "bogus").ExitCode);
            var badVerb = KtoProcess.Run(Dir, endpoint, "run", "explode");
            Assert.Equal(1, badVerb.ExitCode);
            Assert.Contains("unknown command \"run explode\"", badVerb.Stderr);

            // Stop: the run saves the state it stopped at, and kto up then shuts the cluster down by itself.
            var stop = KtoProcess.Run(Dir, endpoint, "run", "stop");
            Assert.Equal(0, stop.ExitCode);
            int stoppedAt = int.Parse(Regex.Match(stop.Stdout, @"after (\d+) committed").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(up.WaitForExit(TimeSpan.FromMinutes(2)), "kto up did not end after the run was stopped");
            Assert.Equal(0, up.ExitCode);
            Assert.True(Directory.Exists(Path.Combine(Dir, "out", $"checkpoint-{stoppedAt}")), $"no checkpoint of the {stoppedAt} steps the run stopped at");
        }
        finally
        {
            if (!up.HasExited) up.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void ACoordinatorHostWithoutARunStartsOneOnCommand()
    {
        string runConfig = TinyRun(maxSteps: 50);
        int port = FreePort();
        string endpoint = $"127.0.0.1:{port}";
        string hostConfig = Path.Combine(Dir, "coordinator.json");
        File.WriteAllText(hostConfig, $$"""{"hostname": "127.0.0.1", "port": {{port}}, "seed_nodes": ["akka.tcp://kto@127.0.0.1:{{port}}"], "roles": ["coordinator"], "run_dir": "run"}""");
        using Process coordinator = StartCoordinatorHost(hostConfig, "--run-id", "later");
        try
        {
            var before = Until(endpoint, r => r.ExitCode == 0, "run", "status");
            Assert.Contains("run later: not started", before.Stdout);
            var relative = KtoProcess.Run(Dir, endpoint, "run", "start", "run.json");
            Assert.Equal(1, relative.ExitCode);
            Assert.Contains("absolute path", relative.Stderr);
            var start = KtoProcess.Run(Dir, endpoint, "run", "start", runConfig);
            Assert.True(start.ExitCode == 0, start.Stderr);
            Assert.Contains("run later started: 96 examples, 50 steps of 8 × 1 examples", start.Stdout);
            var status = KtoProcess.Run(Dir, endpoint, "run", "status");
            Assert.Contains("run later: running, 0/50 steps committed", status.Stdout);
            Assert.Contains("trainers: 0 registered", status.Stdout);
            Assert.Equal("no trainer or scorer is registered", KtoProcess.Run(Dir, endpoint, "node", "list").Stdout.Trim());

            // cluster leave: the host leaves the cluster, and its process ends.
            var leave = KtoProcess.Run(Dir, endpoint, "cluster", "leave");
            Assert.Equal(0, leave.ExitCode);
            Assert.Contains("is leaving the cluster", leave.Stdout);
            Assert.True(coordinator.WaitForExit(TimeSpan.FromMinutes(1)), "the coordinator host did not end after leaving the cluster");
        }
        finally
        {
            if (!coordinator.HasExited) coordinator.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void RunCommandsSentToAnotherCoordinatorHostReachTheRunCoordinator()
    {
        string runConfig = TinyRun(maxSteps: 50);
        int[] ports = [FreePort(), FreePort()];
        string seeds = System.Text.Json.JsonSerializer.Serialize(ports.Select(p => $"akka.tcp://kto@127.0.0.1:{p}"));
        var hosts = new List<Process>();
        try
        {
            for (int i = 0; i < 2; i++)
            {
                string hostConfig = Path.Combine(Dir, $"coordinator-{i}.json");
                File.WriteAllText(hostConfig, $$"""{"hostname": "127.0.0.1", "port": {{ports[i]}}, "seed_nodes": {{seeds}}, "roles": ["coordinator"], "run_dir": "run"}""");
                hosts.Add(StartCoordinatorHost(hostConfig, "--run-id", "two", "--run-config", runConfig));
                if (i == 0) Until($"127.0.0.1:{ports[0]}", r => r.ExitCode == 0, "run", "status"); // the first seed forms the cluster
            }
            string second = $"127.0.0.1:{ports[1]}";
            Until(second, r => r.Stdout.Split('\n').Count(l => l.Contains("| [coordinator] | Up", StringComparison.Ordinal)) == 2, "cluster", "show");

            // The singleton lives on the first (oldest) host; the second passes run and node commands on to it.
            var status = KtoProcess.Run(Dir, second, "run", "status");
            Assert.True(status.ExitCode == 0, status.Stderr);
            Assert.Contains("run two: running, 0/50 steps committed", status.Stdout);
            Assert.Equal(0, KtoProcess.Run(Dir, second, "run", "pause").ExitCode);
            Assert.Contains("run two: paused", KtoProcess.Run(Dir, $"127.0.0.1:{ports[0]}", "run", "status").Stdout);
            Assert.Equal("no trainer or scorer is registered", KtoProcess.Run(Dir, second, "node", "list").Stdout.Trim());

            // The second host reports itself, names the first as the singleton's host, and passes run history on.
            var self = KtoProcess.Run(Dir, second, "cluster", "status");
            Assert.True(self.ExitCode == 0, self.Stderr);
            Assert.Matches($@"^akka\.tcp://kto@127\.0\.0\.1:{ports[1]} \| \[coordinator\] \| Up\s+\| false$", self.Stdout.Split('\n')[1]);
            Assert.Contains($"sees 2 members (2 up), 0 unreachable", self.Stdout);
            Assert.Contains($"run coordinator singleton: on akka.tcp://kto@127.0.0.1:{ports[0]}", self.Stdout);
            Assert.Matches($@"\nrun coordinator singleton \| akka\.tcp://kto@127\.0\.0\.1:{ports[0]}$", KtoProcess.Run(Dir, second, "cluster", "leader").Stdout.TrimEnd());
            var history = KtoProcess.Run(Dir, second, "run", "history");
            Assert.True(history.ExitCode == 0, history.Stderr);
            Assert.Matches(@"^step \| event\s+\| details\n   0 \| coordinator \| incarnation 1 \(first start\).*\n   0 \| run started \| two: 50 steps of 8 examples × 1 micro-batches, 96 examples\n", history.Stdout);
            Assert.EndsWith("| paused      | by an operator", history.Stdout.TrimEnd());

            // The interactive prompt, driven through standard input: each line runs as a command, a bad one says why
            // and the session goes on; the end of input ends it.
            var session = KtoProcess.RunWithInput(Dir, "cluster status\nbogus\nrun history --since 0\nnode list\n", second);
            Assert.True(session.ExitCode == 0, session.Stderr);
            Assert.StartsWith($"kto {second}: interactive; `help` lists the commands, `exit` leaves\nkto {second}> address ", session.Stdout);
            Assert.Contains($"run coordinator singleton: on akka.tcp://kto@127.0.0.1:{ports[0]}\nkto {second}> ", session.Stdout);
            Assert.Contains("error: expected PALETTE VERB (cluster, run or node), found \"bogus\"", session.Stderr);
            Assert.Contains("| run started | two: 50 steps", session.Stdout);
            Assert.Contains($"no trainer or scorer is registered\nkto {second}> ", session.Stdout);
            Assert.False(File.Exists(Path.Combine(Dir, ".kto_history"))); // scripted input is not history
        }
        finally
        {
            foreach (Process p in hosts)
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.Dispose();
            }
        }
    }

    [Fact]
    public void NoCoordinatorAtTheAddressIsReportedClearly()
    {
        var r = KtoProcess.Run(Dir, $"127.0.0.1:{FreePort()}", "cluster", "show");
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("no kto coordinator host answered", r.Stderr);
    }
}
