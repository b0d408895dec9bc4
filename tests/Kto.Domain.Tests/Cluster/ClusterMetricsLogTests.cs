using System.Text.Json;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Cluster;

/// <summary>metrics.jsonl of a cluster run as a projection of its commits: windows, values, and lines written late.</summary>
public sealed class ClusterMetricsLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-metrics-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // 10 examples, batch 4 × 1: 3 steps per epoch; 7 steps; windows end at 3, 6 and 7 (logging_steps 3).
    private static readonly RunSpec Spec = new("r", "fp", 10, 3, true, 4, 1, 7, "{}");

    private KtoConfig Config => new() { OutputDir = _dir, LoggingSteps = 3, LearningRate = 1e-3, LrSchedulerType = "constant", WarmupSteps = 0 };

    /// <summary>Step <paramref name="step"/>'s commit: loss sum = step + 1 over 2 micro-batches, 4 chosen examples, 10 tokens, 0.5 s.</summary>
    private static StepCommitted Commit(int step, int members = 2) => new(step, step + 1, [.. Enumerable.Range(1, members).Select(i => $"t{i}")], 7,
        MetricVector.From(new StepMetrics { LossSum = step + 1, MicroBatches = 2, ChosenCount = 4, ChosenRewardSum = 2 * (step + 1), Tokens = 10 }), GradNorm: 0.1 * step, Seconds: 0.5);

    private List<JsonElement> Lines() => [.. File.ReadAllLines(Path.Combine(_dir, MetricsLog.FileName)).Select(l => JsonDocument.Parse(l).RootElement)];

    [Fact]
    public void EachWindowIsOneLineOfItsCommitsWithHandComputedValues()
    {
        var log = ClusterMetricsLog.Open(Spec, Config, committed: 0);
        for (int s = 0; s < 7; s++) log.Add(Commit(s, members: s == 6 ? 1 : 2));
        Assert.Equal(3, log.Flush());
        var lines = Lines();
        Assert.Equal([3, 6, 7], lines.Select(l => l.GetProperty("step").GetInt32()));
        // window 1: steps 0..2, loss sums 1+2+3 over 6 micro-batches = 1.0; rewards 2+4+6 over 12 chosen = 1.0
        Assert.Equal(1.0, lines[0].GetProperty("loss").GetDouble(), 12);
        Assert.Equal(1.0, lines[0].GetProperty("rewards/chosen").GetDouble(), 12);
        Assert.Equal(0.2, lines[0].GetProperty("grad_norm").GetDouble(), 12);          // the window's last step
        Assert.Equal(12 / 1.5, lines[0].GetProperty("examples/s").GetDouble(), 12);    // 3 steps × 4 examples over 3 × 0.5 s
        Assert.Equal(30 / 1.5, lines[0].GetProperty("tokens/s").GetDouble(), 12);
        Assert.Equal(1.0, lines[0].GetProperty("epoch").GetDouble(), 12);
        Assert.Equal(1e-3, lines[0].GetProperty("learning_rate").GetDouble(), 15);
        // window 2: (4+5+6)/6 = 2.5; the last window is the single step 6: 7/2
        Assert.Equal(2.5, lines[1].GetProperty("loss").GetDouble(), 12);
        Assert.Equal(3.5, lines[2].GetProperty("loss").GetDouble(), 12);
        Assert.Equal(1, lines[2].GetProperty("trainers").GetDouble());
    }

    [Fact]
    public void AWindowWaitsForAllItsCommitsAndAReopenedLogWritesOnlyWhatIsMissing()
    {
        var log = ClusterMetricsLog.Open(Spec, Config, committed: 0);
        log.Add(Commit(0));
        log.Add(Commit(2));
        Assert.Equal(0, log.Flush()); // step 1 is missing
        log.Add(Commit(1));
        log.Add(Commit(3));
        Assert.Equal(1, log.Flush());
        Assert.Equal(3, log.LoggedStep);

        // A later incarnation with 5 committed steps, whose file also ends with a line cut short.
        File.AppendAllText(Path.Combine(_dir, MetricsLog.FileName), "{\"step\":6,\"lo");
        var again = ClusterMetricsLog.Open(Spec, Config, committed: 5);
        Assert.Equal(3, again.LoggedStep);
        for (int s = 0; s < 7; s++) again.Add(Commit(s));
        Assert.Equal(2, again.Flush());
        Assert.Equal([3, 6, 7], Lines().Select(l => l.GetProperty("step").GetInt32()));
    }

    [Fact]
    public void CommitsOfOlderJournalsWithoutMetricsSkipTheirWindow()
    {
        var log = ClusterMetricsLog.Open(Spec, Config, committed: 0);
        for (int s = 0; s < 3; s++) log.Add(Commit(s) with { Metrics = null });
        for (int s = 3; s < 6; s++) log.Add(Commit(s));
        Assert.Equal(2, log.Flush());
        Assert.Equal(1, log.SkippedWindows);
        Assert.Equal([6], Lines().Select(l => l.GetProperty("step").GetInt32()));
    }

    [Fact]
    public void ARunContinuedFromACheckpointLogsFromThatStepAndAFragmentIsNeverAppendedTo()
    {
        // An earlier run's file, whose last line was cut by a failure the cut-back could not undo.
        File.WriteAllText(Path.Combine(_dir, MetricsLog.FileName), "{\"step\":3,\"loss\":1}\n{\"step\":6,\"lo");
        var log = ClusterMetricsLog.Open(Spec, Config, committed: 4, firstStep: 4); // continued from a checkpoint of step 4
        Assert.Equal(4, log.LoggedStep);
        log.Add(Commit(4));
        log.Add(Commit(5));
        Assert.Equal(1, log.Flush()); // the window 5–6, of the run's own steps
        Assert.Equal([3, 6], Lines().Select(l => l.GetProperty("step").GetInt32()));

        File.AppendAllText(Path.Combine(_dir, MetricsLog.FileName), "{\"step\":7,\"lo"); // cut again
        new MetricsLog(_dir).Append(7, 2.3, [new("loss", 0.5)]);
        Assert.Equal([3, 6, 7], Lines().Select(l => l.GetProperty("step").GetInt32()));
    }
}
