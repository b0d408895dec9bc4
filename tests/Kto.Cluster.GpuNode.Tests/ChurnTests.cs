using System.Diagnostics;
using Kto.Cluster.Coordinator.Tests;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>Churn and lifecycle with real processes: a graceful coordinator restart, a hung trainer, a hung coordinator host that was replaced.</summary>
public sealed class ChurnTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    [Fact]
    public async Task AGracefullyRestartedCoordinatorGetsItsTrainersBackAndCompletesTheRun()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 200);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("step 8/", cluster.Guard);
        coordinator.Terminate();
        // The run is incomplete: a supervisor must be able to tell this from a finished run.
        Assert.Equal(Coordinator.HostExitCodes.Terminated, await coordinator.WaitForExit(cluster.Guard));
        await coordinator.WaitFor("incomplete", cluster.Guard);

        // It waits up to 15 s for both trainers of the last incarnation before its first step.
        var restarted = cluster.StartCoordinator("--min-trainers", "2");
        string ready = await restarted.WaitFor("coordinator ready", cluster.Guard);
        Assert.Contains("incarnation 2", ready);
        await restarted.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await restarted.WaitForExit(cluster.Guard));
        Assert.Equal(200 - LocalCluster.Proc.CommittedAtReady(ready), restarted.Commits.Count);
        Assert.Equal("t1,t2", MembersOf(restarted.Commits[0])); // both trainers came back by themselves
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task ATrainerFrozenPastTheFailureDetectorIsLeftOutFencedAndRejoinsByItself()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 400, learningRate: 1e-4);
        var coordinator = cluster.StartCoordinator("--min-trainers", "3");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var t3 = cluster.StartTrainer("t3");
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && l.Contains("members t1,t2,t3 ", StringComparison.Ordinal), cluster.Guard, "a step of all three");
        t3.Freeze(true);
        int frozenAt = coordinator.Commits.Count;
        var clock = Stopwatch.StartNew();
        // Left out: the others commit while t3 is frozen mid-step.
        await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && l.Contains("members t1,t2 ", StringComparison.Ordinal), cluster.Guard, "a step without t3");
        Output.WriteLine($"freeze → first commit without t3: {clock.Elapsed.TotalSeconds:0.0} s");
        // Paused from here until t3 is back, so that a fast run cannot end before t3 is downed, wakes, joins again and
        // takes over the state.
        Assert.Contains("paused", KtoTool.Run(cluster.Port, "run", "pause"));
        // Frozen long enough for the coordinator to down it (2 s to unreachable + 5 s).
        await coordinator.WaitFor(l => l.Contains("downing ", StringComparison.Ordinal), cluster.Guard, "t3 downed");
        string status = KtoTool.Run(cluster.Port, "run", "status");
        int paused = int.Parse(System.Text.RegularExpressions.Regex.Match(status, @"(\d+)/400 steps committed").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        t3.Freeze(false);
        await t3.WaitFor("joining again", cluster.Guard);
        await coordinator.WaitFor(l => l.Contains("trainer t3 registered at", StringComparison.Ordinal) && l.Contains($"holding step {paused} ", StringComparison.Ordinal), cluster.Guard, "t3 synced");
        int thawedAt = coordinator.Commits.Count;
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor(l => l.Contains(" committed:", StringComparison.Ordinal) && l.Contains("members t1,t2,t3 ", StringComparison.Ordinal)
            && coordinator.Commits.Skip(thawedAt).Contains(l), cluster.Guard, "t3 back in a step");
        Output.WriteLine($"thaw → t3 back in a step: {clock.Elapsed.TotalSeconds:0.0} s since the freeze; {coordinator.Commits.Count - frozenAt} steps committed meanwhile");
        await coordinator.WaitFor("complete:", cluster.Guard);
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
    }

    [PostgresFact]
    public async Task ACoordinatorHostFrozenUntilReplacedChangesNothingWhenItWakesAndJoinsAgain()
    {
        string pg = PostgresFactAttribute.ConnectionString!;
        await using var cluster = new LocalCluster(Output, maxSteps: 80, pg, coordinators: 3);
        var first = cluster.StartCoordinatorAt(0, "--min-trainers", "2");
        await first.WaitFor("coordinator ready", cluster.Guard);
        var standbys = new[] { cluster.StartCoordinatorAt(1), cluster.StartCoordinatorAt(2) };
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await first.WaitFor("step 4/", cluster.Guard);
        first.Freeze(true);
        string readyLine = await await Task.WhenAny(standbys.Select(s => s.WaitFor("coordinator ready", cluster.Guard)));
        Assert.Contains("incarnation 2", readyLine);
        var successor = standbys.Single(s => s.Lines.Contains(readyLine));
        int before = LocalCluster.Proc.CommittedAtReady(readyLine);
        await successor.WaitFor($"step {before + 3}/", cluster.Guard);
        int firstCommits = first.Commits.Count;
        first.Freeze(false);
        // The woken host learns it was replaced, starts a new actor system and joins again; it commits nothing.
        await first.WaitFor("joining again as a new incarnation", cluster.Guard);
        await successor.WaitFor("complete:", cluster.Guard);
        Assert.Equal(firstCommits, first.Commits.Count);
        Assert.Equal(80 - before, successor.Commits.Count);
        IReadOnlyList<IRunEvent> events = await cluster.JournalAsync(pg);
        int second = events.ToList().FindIndex(e => e is CoordinatorIncarnated { Incarnation: 2 });
        Assert.DoesNotContain(events.Skip(second).OfType<StepCommitted>(), c => GenerationNumbers.IncarnationOf(c.Generation) < 2);
        await AssertSameWeightsAndCleanJournal(cluster, pg);
    }
}
