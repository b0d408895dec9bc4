using Kto.Cluster.Testing;
using System.Globalization;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// The reference scorer pool as separate processes (precompute_ref_log_probs on): a scorer node scores the run's units
/// ahead of training, the coordinator stores them in their own journal and hands each step's values to the trainers,
/// which never load the reference model. The result must equal one process's precomputed run, and the score journal
/// must hold every unit exactly once, also across a coordinator crash.
/// </summary>
public sealed class ScorerPoolTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose() => _slot.Dispose();

    private const double Tolerance = 1e-5;

    /// <summary>"scored unit 7 (12 examples, 30 ms)" → 7.</summary>
    private static int UnitOf(string line) => int.Parse(line.Split("scored unit ")[1].Split(' ')[0], CultureInfo.InvariantCulture);

    private static bool IsScoredLine(string line) => line.Contains("scored unit ", StringComparison.Ordinal);

    /// <summary>Every unit the run needs is stored exactly once, with the indices of its unit.</summary>
    private static void AssertEveryUnitStoredOnce(RunSpec spec, IReadOnlyList<ScoresStored> stored)
    {
        int[][] units = ReferenceScoring.Units(spec.Plan());
        Assert.Equal(stored.Count, stored.Select(s => s.Unit).Distinct().Count());
        Assert.Equal(Enumerable.Range(0, units.Length), stored.Select(s => s.Unit).Order());
        Assert.All(stored, s => Assert.Equal(units[s.Unit], s.Indices));
        Assert.All(stored, s => Assert.All(s.Completion, v => Assert.True(v < 0 && double.IsFinite(v), $"unit {s.Unit}: log-prob {v}")));
    }

    private async Task AssertSameWeightsAndCleanJournal(LocalCluster cluster)
    {
        double rel = LocalCluster.RelativeL2(cluster.SingleProcessWeights(), cluster.ClusterWeights());
        output.WriteLine($"relative L2 to the single-process precomputed run: {rel:E2}");
        Assert.True(rel < Tolerance, $"relative L2 distance to the single-process weights: {rel:E2}");
        AuditReport audit = JournalAudit.Check(await cluster.JournalAsync(), requireComplete: true);
        Assert.True(audit.Ok, string.Join("; ", audit.Problems));
        Assert.Equal(cluster.MaxSteps, audit.Committed);
    }

    [Fact]
    public async Task AScorerNodePrecomputesForTrainersThatNeverLoadTheReference()
    {
        await using var cluster = new LocalCluster(output, maxSteps: 24, precompute: true);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var scorer = cluster.StartScorer("s1");
        var trainers = new[] { cluster.StartTrainer("t1"), cluster.StartTrainer("t2") };
        await coordinator.WaitFor("; final checkpoint ", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));

        foreach (var t in trainers) await t.WaitFor("reference model not loaded", cluster.Guard);
        Assert.All(trainers, t => Assert.DoesNotContain(t.Lines, l => l.Contains("live reference model loaded", StringComparison.Ordinal)));
        RunSpec spec = cluster.Spec();
        Assert.True(spec.UsesScorerPool);
        IReadOnlyList<ScoresStored> stored = await cluster.ScoreJournalAsync(spec);
        AssertEveryUnitStoredOnce(spec, stored);
        // Without a crash every unit is scored once; only a scorer the coordinator saw unreachable for a moment (a load
        // spike) has its unfinished units handed out again.
        var scored = scorer.Lines.Where(IsScoredLine).Select(UnitOf).ToList();
        int units = ReferenceScoring.Units(spec.Plan()).Length;
        int blips = coordinator.Lines.Count(l => l.Contains("scorer s1 unreachable", StringComparison.Ordinal));
        Assert.Equal(units, scored.Distinct().Count());
        Assert.InRange(scored.Count, units, units + blips * Kto.Cluster.Coordinator.Actors.ReferenceScoresActor.PerScorer);
        Assert.Equal(24, coordinator.Commits.Count);
        await AssertSameWeightsAndCleanJournal(cluster);
    }

    [Fact]
    public async Task AfterACoordinatorCrashStoredScoresAreNotScoredAgain()
    {
        // 240 examples in micro-batches of 6: 40 units over the first 20 steps. A window of one step keeps the scorer
        // just ahead of training, so the crash at step 6 falls in the middle of the scoring.
        await using var cluster = new LocalCluster(output, maxSteps: 30, precompute: true, examples: 240);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2", "--scoring-window", "1");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var scorer = cluster.StartScorer("s1");
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("step 6/", cluster.Guard);
        coordinator.Kill();
        await coordinator.WaitForExit(cluster.Guard);

        var restarted = cluster.StartCoordinator("--scoring-window", "1");
        await restarted.WaitFor("coordinator ready", cluster.Guard);
        string recovered = await restarted.WaitFor("needed units stored", cluster.Guard);
        output.WriteLine(recovered);
        int storedBefore = int.Parse(System.Text.RegularExpressions.Regex.Match(recovered, @": (\d+) of \d+ needed units stored").Groups[1].Value, CultureInfo.InvariantCulture);
        await restarted.WaitFor("; final checkpoint ", cluster.Guard);

        RunSpec spec = cluster.Spec();
        IReadOnlyList<ScoresStored> stored = await cluster.ScoreJournalAsync(spec);
        AssertEveryUnitStoredOnce(spec, stored);
        int units = ReferenceScoring.Units(spec.Plan()).Length;
        Assert.InRange(storedBefore, 1, units - 1); // the crash did fall in the middle of the scoring
        // No stored unit is scored again: a coordinator that redid stored work would make the scorer score up to
        // storedBefore units twice. Only units in flight at the crash (at most 2), or handed out again after the
        // scorer was seen unreachable for a moment, can be scored twice.
        var scored = scorer.Lines.Where(IsScoredLine).Select(UnitOf).ToList();
        int blips = cluster.AllLines().Count(l => l.Contains("scorer s1 unreachable", StringComparison.Ordinal));
        output.WriteLine($"{storedBefore} of {units} units stored before the crash; the scorer scored {scored.Count} units in all ({blips} unreachable moments)");
        Assert.Equal(units, scored.Distinct().Count());
        Assert.InRange(scored.Count, units, units + (1 + blips) * Kto.Cluster.Coordinator.Actors.ReferenceScoresActor.PerScorer);
        await AssertSameWeightsAndCleanJournal(cluster);
    }
}
