using System.Text.Json;
using System.Diagnostics;
using Kto.Cluster.Coordinator.Tests;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// The elastic cluster as separate processes on loopback (a coordinator on a real SQLite journal or PostgreSQL,
/// trainer nodes, SIGKILL): every run must end with the weights one process reaches on the same config, and its journal
/// must show every step committed exactly once. Times are printed, never asserted.
/// </summary>
public sealed class ElasticClusterTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    [Fact]
    public async Task ThreeTrainerProcessesReachTheWeightsOfOneProcess()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 24);
        var coordinator = cluster.StartCoordinator("--min-trainers", "3");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        foreach (string id in new[] { "t1", "t2", "t3" }) cluster.StartTrainer(id);
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));

        var commits = coordinator.Commits;
        Assert.Equal(24, commits.Count);
        Assert.All(commits, c => Assert.Equal("t1,t2,t3", MembersOf(c)));
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task LoraAdaptersTrainOnTheClusterAndAJoinerTakesOverOnlyTheAdaptersState()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 200, learningRate: 1e-3, lora: true);
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        await coordinator.WaitFor("step 3/", cluster.Guard);
        await JoinWhilePaused(cluster, coordinator, "t2", "t1,t2");
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor("complete:", cluster.Guard);

        string checkpoint = Path.Combine(cluster.OutputDir, "checkpoint-200");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        var adapter = LocalCluster.Weights(checkpoint);
        Assert.All(adapter.Keys, k => Assert.Contains(".lora_", k));

        // Only the adapters' gradients travel: a 2-member ring all-reduce sends each member 2·(n−1)/n = 1 × the
        // gradient bytes, plus KL, metrics and frame headers; alone, a trainer sends nothing.
        long gradientBytes = 4L * adapter.Values.Sum(v => v.Length);
        static long Sent(string line) => long.Parse(System.Text.RegularExpressions.Regex.Match(line, @"sent ([0-9]+) B per member").Groups[1].Value);
        var commits = coordinator.Commits;
        Assert.All(commits.Where(l => MembersOf(l) == "t1,t2"), l => Assert.InRange(Sent(l), gradientBytes, gradientBytes + 16384));
        Assert.All(commits.Where(l => MembersOf(l) == "t1"), l => Assert.Equal(0, Sent(l)));
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task TheCoordinatorSchedulesEvaluationAndLogsItOnceAsOneProcessDoes()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 12, evaluate: true);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));

        static List<Dictionary<string, JsonElement>> EvalLines(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
            .Select(l => JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(l)!).Where(l => l.ContainsKey("eval_loss")).ToList();
        var singleWeights = cluster.SingleProcessWeights(); // kto train's loop on the same config, into "single"
        var clustered = EvalLines(cluster.OutputDir);
        var single = EvalLines(Path.Combine(cluster.Dir, "single"));
        Assert.Equal([4, 8, 12], clustered.Select(l => l["step"].GetInt32()));
        Assert.Equal(single.Select(l => l["step"].GetInt32()), clustered.Select(l => l["step"].GetInt32()));
        foreach (var (c, o) in clustered.Zip(single))
            foreach (string key in o.Keys.Where(k => k.StartsWith("eval_", StringComparison.Ordinal) && k is not ("eval_runtime" or "eval_samples_per_second")))
            {
                double a = c[key].GetDouble(), b = o[key].GetDouble();
                Assert.True(Math.Abs(a - b) <= 1e-4 * Math.Max(1, Math.Abs(b)), $"step {o["step"]}: {key} {a} on the cluster, {b} in one process");
            }
        // Written once: no duplicate eval lines, each after its step's training line.
        var steps = File.ReadAllLines(Path.Combine(cluster.OutputDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(e => (e.GetProperty("step").GetInt32(), e.TryGetProperty("eval_loss", out _))).ToList();
        Assert.Equal([(4, false), (4, true), (8, false), (8, true), (12, false), (12, true)], steps);
        Assert.True(LocalCluster.RelativeL2(singleWeights, cluster.ClusterWeights()) < Tolerance);
        AuditReport audit = JournalAudit.Check(await cluster.JournalAsync(), requireComplete: true);
        Assert.True(audit.Ok, string.Join("; ", audit.Problems));
        Assert.Equal(3, (await cluster.JournalAsync()).OfType<EvaluationRecorded>().Count());
    }

    [Fact]
    public async Task AQwen3ModelTrainsOnTheClusterAndAJoiningTrainerTakesOverItsState()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 200, learningRate: 1e-4, arch: "qwen3");
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        await coordinator.WaitFor("step 3/", cluster.Guard);
        await JoinWhilePaused(cluster, coordinator, "t2", "t1,t2");
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor("complete:", cluster.Guard);

        Assert.Equal(200, coordinator.Commits.Count);
        Assert.Equal("t1,t2", MembersOf(coordinator.Commits[^1]));
        Assert.Contains("lm_head.weight", LocalCluster.Weights(Path.Combine(cluster.OutputDir, "checkpoint-200")).Keys);
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task ATrainerKilledMidRunIsLeftOutAndTheRunEndsWithTheSameWeights()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 40);
        var coordinator = cluster.StartCoordinator("--min-trainers", "3");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var trainers = new[] { "t1", "t2", "t3" }.Select(cluster.StartTrainer).ToList();
        await coordinator.WaitFor("step 4/", cluster.Guard);

        trainers[1].Kill();
        var clock = Stopwatch.StartNew();
        await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && MembersOf(l) == "t1,t3", cluster.Guard, "a commit by the survivors");
        Output.WriteLine($"kill -9 to the next committed step: {clock.Elapsed.TotalSeconds:0.0} s");
        await coordinator.WaitFor("complete:", cluster.Guard);

        var commits = coordinator.Commits;
        Assert.Equal(40, commits.Count);
        Assert.Equal("t1,t3", MembersOf(commits[^1]));
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task WithFullDeterminismJoinsAndAKillLeaveTheFinalCheckpointAndMetricsByteIdenticalToKtoTrain()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 96, learningRate: 3e-3, fullDeterminism: true);
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        await coordinator.WaitFor("step 4/", cluster.Guard);
        await JoinWhilePaused(cluster, coordinator, "t2", "t1,t2");
        await JoinWhilePaused(cluster, coordinator, "t3", "t1,t2,t3");
        cluster.Processes().Single(p => p.Name == "t2").Kill();
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && MembersOf(l) == "t1,t3", cluster.Guard, "a commit by the survivors");
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        Assert.Contains(coordinator.Commits, l => MembersOf(l) == "t1,t2,t3");

        cluster.SingleProcessWeights(); // kto train on the same config, into "single"
        string ours = Path.Combine(cluster.OutputDir, "checkpoint-96"), theirs = Path.Combine(cluster.Dir, "single", "checkpoint-96");
        foreach (string file in new[] { "model.safetensors", "optimizer.safetensors", "trainer_state.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(ours, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(theirs, file))), $"{file} differs from kto train's");

        // metrics.jsonl: every column but the timing ones.
        static List<Dictionary<string, JsonElement>> Lines(string dir) => [.. File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))
            .Select(l => JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(l)!)];
        var clustered = Lines(cluster.OutputDir);
        var single = Lines(Path.Combine(cluster.Dir, "single"));
        Assert.Equal(single.Count, clustered.Count);
        foreach (var (c, s) in clustered.Zip(single))
            foreach (string key in s.Keys.Where(k => k is not ("examples/s" or "tokens/s")))
                Assert.True(c.TryGetValue(key, out var v) && v.GetRawText() == s[key].GetRawText(), $"step {s["step"]}: {key} {(c.TryGetValue(key, out var x) ? x.GetRawText() : "missing")} on the cluster, {s[key].GetRawText()} in kto train");
        AuditReport audit = JournalAudit.Check(await cluster.JournalAsync(), requireComplete: true);
        Assert.True(audit.Ok, string.Join("; ", audit.Problems));
    }

    [Fact]
    public async Task ATrainerAddedMidRunTakesOverThePeersStateAndTheFirstOneLeavesGracefully()
    {
        // Many steps, so the run is still going when the second process has loaded; a smaller learning rate keeps
        // float rounding (sums formed in another order by another membership) from growing over them.
        await using var cluster = new LocalCluster(Output, maxSteps: 400, learningRate: 1e-4);
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var first = cluster.StartTrainer("t1");
        await coordinator.WaitFor("step 3/", cluster.Guard);

        var second = cluster.StartTrainer("t2");
        await second.WaitFor("took over the state of step", cluster.Guard);
        string joined = await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && MembersOf(l) == "t1,t2", cluster.Guard, "a commit by both");
        int joinedAt = int.Parse(joined.Split(' ')[1].Split('/')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(joinedAt < 390, $"the second trainer joined at step {joinedAt}, too late to test a leave");

        // A graceful leave: the first trainer finishes the step it is part of, is let go, and exits by itself.
        await coordinator.WaitFor($"step {joinedAt + 2}/", cluster.Guard);
        first.Terminate();
        await first.WaitFor("leave granted", cluster.Guard);
        Assert.Equal(0, await first.WaitForExit(cluster.Guard));
        await coordinator.WaitFor("complete:", cluster.Guard);

        var commits = coordinator.Commits;
        Assert.Equal(400, commits.Count);
        Assert.Equal("t2", MembersOf(commits[^1]));
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public Task TheCoordinatorKilledAndRestartedMidRunResumesFromItsSqliteJournal() => CoordinatorRestart(postgres: null);

    [PostgresFact]
    public Task TheCoordinatorKilledAndRestartedMidRunResumesFromItsPostgresJournal() => CoordinatorRestart(PostgresFactAttribute.ConnectionString);

    private async Task CoordinatorRestart(string? postgres)
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 60, postgres);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("step 4/", cluster.Guard);
        coordinator.Kill();
        await coordinator.WaitForExit(cluster.Guard);

        var restarted = cluster.StartCoordinator();
        string ready = await restarted.WaitFor("coordinator ready", cluster.Guard);
        Assert.Contains("incarnation 2", ready);
        await restarted.WaitFor("complete:", cluster.Guard);

        // The restarted coordinator commits exactly the steps its journal did not hold (a step the first one
        // persisted but had not printed before the kill counts as committed, and is not committed again).
        int before = LocalCluster.Proc.CommittedAtReady(ready);
        Assert.InRange(before, 4, 59);
        var after = restarted.Commits;
        Assert.Equal(60 - before, after.Count);
        Assert.StartsWith($"step {before + 1}/60 ", after[0]);
        IReadOnlyList<IRunEvent> events = await cluster.JournalAsync(postgres);
        Assert.Equal(2, events.OfType<CoordinatorIncarnated>().Count());
        await AssertSameWeightsAndCleanJournal(cluster, postgres);
    }

    [PostgresFact]
    public async Task WhenTheCoordinatorHostDiesTheSingletonMovesToAnotherOneOnTheSharedPostgresJournal()
    {
        // Three coordinator hosts (the majority of coordinator hosts downs the rest: a single crash leaves 2 of 3).
        string pg = PostgresFactAttribute.ConnectionString!;
        await using var cluster = new LocalCluster(Output, maxSteps: 60, pg, coordinators: 3);
        var first = cluster.StartCoordinatorAt(0, "--min-trainers", "2");
        await first.WaitFor("coordinator ready", cluster.Guard);
        var standbys = new[] { cluster.StartCoordinatorAt(1), cluster.StartCoordinatorAt(2) };
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await first.WaitFor("step 4/", cluster.Guard);
        first.Kill();
        var clock = Stopwatch.StartNew();

        // The oldest surviving host takes over: it recovers the journal as incarnation 2 and the trainers re-register.
        var ready = await Task.WhenAny(standbys.Select(s => s.WaitFor("coordinator ready", cluster.Guard)));
        string readyLine = await ready;
        Output.WriteLine($"kill -9 of the singleton's host to the new singleton ready: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Contains("incarnation 2", readyLine);
        var successor = standbys.Single(s => s.Lines.Contains(readyLine));
        await successor.WaitFor("complete:", cluster.Guard);
        int before = LocalCluster.Proc.CommittedAtReady(readyLine);
        Assert.Equal(60 - before, successor.Commits.Count);
        IReadOnlyList<IRunEvent> events = await cluster.JournalAsync(pg);
        Assert.Equal(2, events.OfType<CoordinatorIncarnated>().Count());
        await AssertSameWeightsAndCleanJournal(cluster, pg);
    }

    [Fact]
    public async Task AWholeClusterRestartResumesFromTheLatestCheckpointAndReplaysToTheSameWeights()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 40);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var trainers = new[] { cluster.StartTrainer("t1"), cluster.StartTrainer("t2") };
        await coordinator.WaitFor("checkpoint after step 8 recorded", cluster.Guard);
        coordinator.Kill();
        foreach (var t in trainers) t.Kill();

        var restarted = cluster.StartCoordinator("--min-trainers", "2");
        int before = LocalCluster.Proc.CommittedAtReady(await restarted.WaitFor("coordinator ready", cluster.Guard));
        var fresh = new[] { cluster.StartTrainer("t3"), cluster.StartTrainer("t4") };
        string loading = await restarted.WaitFor("loading checkpoint", cluster.Guard);
        Output.WriteLine(loading);
        await restarted.WaitFor("complete:", cluster.Guard);

        var after = restarted.Commits;
        Assert.Equal(40, before + after.Count);
        // Steps 9…before were committed before the crash: replayed from the checkpoint, not committed again.
        if (before > 8) await restarted.WaitFor($"step {before}/40 replayed", cluster.Guard);
        await AssertSameWeightsAndCleanJournal(cluster);
    }
}
