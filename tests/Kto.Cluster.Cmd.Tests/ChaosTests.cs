using Kto.Cluster.Testing;
using System.Text.Json;
using Kto.Cluster.Cmd.Chaos;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>The fault schedule, and the short chaos run through the built tool (real processes, real signals, SQLite journal).</summary>
public sealed class ChaosTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-chaos-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void TheScheduleIsSeededAndHoldsTheFaultsAsked()
    {
        var a = ChaosSchedule.Generate(7, 300, 3, ChaosCounts.Long);
        var b = ChaosSchedule.Generate(7, 300, 3, ChaosCounts.Long);
        Assert.Equal(a.Select(f => (f.AtStep, f.Kind, string.Join(",", f.Targets), f.Delay)), b.Select(f => (f.AtStep, f.Kind, string.Join(",", f.Targets), f.Delay)));
        Assert.NotEqual(a.Select(f => f.AtStep), ChaosSchedule.Generate(8, 300, 3, ChaosCounts.Long).Select(f => f.AtStep));
        Assert.Equal(ChaosCounts.Long.Total, a.Count);
        Assert.True(a.Count(f => f.Kind == FaultKind.TrainerKill) + a.Where(f => f.Kind == FaultKind.TrainerWave).Sum(f => f.Targets.Length) >= 20);
        Assert.Equal(3, a.Count(f => f.Kind == FaultKind.CoordinatorKill));
        Assert.All(a, f => Assert.InRange(f.AtStep, 15, 240));
        Assert.Equal(a.Count, a.Select(f => f.AtStep).Distinct().Count());
        Assert.Equal(a.Select(f => f.AtStep).Order(), a.Select(f => f.AtStep));
        foreach (ChaosFault f in a)
        {
            (double min, double max) = f.Kind switch
            {
                FaultKind.TrainerFreeze => ChaosSchedule.TrainerFreeze,
                FaultKind.CoordinatorFreeze => ChaosSchedule.CoordinatorFreeze,
                FaultKind.CoordinatorKill => ChaosSchedule.CoordinatorRestart,
                _ => ChaosSchedule.TrainerRestart,
            };
            Assert.InRange(f.Delay.TotalSeconds, min, max);
            if (f.Kind == FaultKind.TrainerWave)
            {
                Assert.InRange(f.Targets.Length, 2, 3);
                Assert.Equal(f.Targets.Length, f.Targets.Distinct().Count());
                Assert.True(f.Spacing.Sum(s => s.TotalMilliseconds) < 1000);
            }
            Assert.All(f.Targets, t => Assert.InRange(t, 1, 3));
        }
    }

    [Fact]
    public void AScheduleThatDoesNotFitIsRefused()
    {
        Assert.Throws<ArgumentException>(() => ChaosSchedule.Generate(1, 20, 3, ChaosCounts.Long));
        Assert.Throws<ArgumentException>(() => ChaosSchedule.Generate(1, 300, 1, ChaosCounts.Short)); // a wave needs 2 trainers
    }

    /// <summary>
    /// The CI form of the chaos test: 300 steps on 3 trainers while a trainer is killed, a wave of 2–3 trainers is
    /// killed within a second, a trainer is frozen 3–15 s, the coordinator host is killed and restarted, and frozen
    /// 5–25 s. The run must complete, its journal audit hold, and its weights match one process's within the tolerance.
    /// </summary>
    [Fact]
    public void TheShortChaosRunCompletesAuditsAndMatchesOneProcess()
    {
        string config = Path.Combine(KtoProcess.RepoRoot(), "examples", "chaos", "run.json");
        var r = KtoProcess.Run(_dir, "chaos", config, "--faults", "short", "--trainers", "3", "--seed", "3", "--run-dir", Path.Combine(_dir, "run"), "--timeout-min", "10");
        string last = r.Stdout.Trim().Split('\n')[^1];
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {last}\n{string.Join("\n", r.Stderr.Split('\n').TakeLast(40))}");
        var json = JsonDocument.Parse(last).RootElement;
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.True(json.GetProperty("audit_ok").GetBoolean());
        Assert.Equal(300, json.GetProperty("steps").GetInt32());
        Assert.True(json.GetProperty("relative_l2").GetDouble() <= json.GetProperty("tolerance").GetDouble());
        var faults = json.GetProperty("faults").EnumerateArray().ToList();
        Assert.Equal(ChaosCounts.Short.Total, faults.Count);
        // every fault hit a process and a commit followed it
        Assert.All(faults, f => Assert.True(f.GetProperty("targets").GetArrayLength() > 0, f.ToString()));
        Assert.All(faults, f => Assert.True(f.GetProperty("next_commit_seconds").ValueKind == JsonValueKind.Number, f.ToString()));
    }

    /// <summary>
    /// The same schedule with full_determinism: trainer kills, a wave, a freeze, a coordinator kill and restart and a
    /// coordinator freeze, and the final checkpoint is byte for byte the one kto train writes.
    /// </summary>
    [Fact]
    public void TheShortChaosRunWithFullDeterminismEndsByteIdenticalToOneProcess()
    {
        string config = Path.Combine(KtoProcess.RepoRoot(), "examples", "chaos", "run.json");
        var r = KtoProcess.Run(_dir, "chaos", config, "--faults", "short", "--trainers", "3", "--seed", "3", "--run-dir", Path.Combine(_dir, "run"), "--timeout-min", "10", "--full-determinism");
        string last = r.Stdout.Trim().Split('\n')[^1];
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {last}\n{string.Join("\n", r.Stderr.Split('\n').TakeLast(40))}");
        var json = JsonDocument.Parse(last).RootElement;
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.True(json.GetProperty("identical_bytes").GetBoolean());
        Assert.Equal(0.0, json.GetProperty("relative_l2").GetDouble());
        Assert.Equal(ChaosCounts.Short.Total, json.GetProperty("faults").GetArrayLength());
        Assert.Contains("is byte-identical to one process's", r.Stderr);
    }
}
