using Kto.Cluster.Coordinator.Tests;
using Kto.Cluster.Testing;
using System.Text.Json;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// What the elastic-cluster test classes share: a machine slot (<see cref="MachineSlot"/>), the test's output, and the
/// checks a run ends with. Each class is its own xunit collection, so two of them can run at once, one per slot.
/// </summary>
public abstract class ClusterTestBase(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly MachineSlot _slot = MachineSlot.Take();

    /// <summary>Relative L2 distance a cluster run's weights may have from one process's (float sums formed in another order).</summary>
    protected const double Tolerance = 1e-5;

    /// <summary>The test's output.</summary>
    protected Xunit.Abstractions.ITestOutputHelper Output { get; } = output;

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing) _slot.Dispose();
    }

    /// <summary>The members of a commit line ("" for other lines that mention a commit, e.g. "… not committed: the run is paused").</summary>
    protected static string MembersOf(string commitLine) => commitLine.Split(" members ") is [_, var rest, ..] ? rest.Split(' ')[0] : "";

    /// <summary>
    /// Starts trainer <paramref name="id"/> while the run is paused (steps of these tiny runs take milliseconds, so a
    /// run could end before a joiner is in; a run still running is paused first), waits for it to take over the state,
    /// lets one step run and checks that <paramref name="members"/> committed it. The run is left paused.
    /// </summary>
    protected static async Task JoinWhilePaused(LocalCluster cluster, LocalCluster.Proc coordinator, string id, string members)
    {
        if (!KtoTool.Run(cluster.Port, "run", "status").Contains(": paused,", StringComparison.Ordinal))
            Assert.Contains("paused", KtoTool.Run(cluster.Port, "run", "pause"));
        var joiner = cluster.StartTrainer(id);
        await joiner.WaitFor("took over the state of step", cluster.Guard);
        int at = cluster.PauseAfter(1);
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await cluster.PausedAt(coordinator, at);
        Assert.Equal(members, MembersOf(coordinator.Commits[^1]));
    }

    /// <summary>The cluster's weights are within <paramref name="tolerance"/> of one process's, and its journal audit holds every step once.</summary>
    protected async Task AssertSameWeightsAndCleanJournal(LocalCluster cluster, string? postgres = null, double tolerance = Tolerance)
    {
        double rel = LocalCluster.RelativeL2(cluster.SingleProcessWeights(), cluster.ClusterWeights());
        Output.WriteLine($"relative L2 to the single-process weights: {rel:E2}");
        Assert.True(rel < tolerance, $"relative L2 distance to the single-process weights: {rel:E2}");
        IReadOnlyList<IRunEvent> events = await cluster.JournalAsync(postgres);
        AuditReport audit = JournalAudit.Check(events, requireComplete: true);
        Assert.True(audit.Ok, string.Join("; ", audit.Problems));
        Assert.Equal(cluster.MaxSteps, audit.Committed);
    }

    /// <summary>metrics.jsonl has exactly one well-formed line per logging window (logging_steps 4), none cut short.</summary>
    protected static void AssertCompleteMetrics(LocalCluster cluster)
    {
        string[] lines = File.ReadAllLines(Path.Combine(cluster.OutputDir, "metrics.jsonl"));
        var steps = lines.Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            Assert.True(doc.RootElement.GetProperty("loss").GetDouble() > 0);
            return doc.RootElement.GetProperty("step").GetInt32();
        }).ToList();
        Assert.Equal(Enumerable.Range(1, cluster.MaxSteps / 4).Select(i => 4 * i), steps);
        Assert.EndsWith("\n", File.ReadAllText(Path.Combine(cluster.OutputDir, "metrics.jsonl")));
    }
}
