using Kto.Cluster.Testing;
using System.Text.Json;

namespace Kto.Cluster.Cmd.Tests;

/// <summary><c>kto bench cluster</c> at a tiny size through the built tool: two local clusters, a kill, the baseline processes.</summary>
public sealed class BenchClusterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-bench-cluster-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take(); // it checks the output's shape, not its figures

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void BenchClusterPrintsThroughputTheSplitOfAStepTheMachineCeilingAndTheFailover()
    {
        var r = KtoProcess.Run(_dir, "bench", "cluster", "--layers", "1", "--width", "16", "--vocab", "257", "--tokens", "16", "--batch", "4", "--steps", "3", "--warmup", "1", "--flood");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("cluster", json.GetProperty("bench").GetString());
        foreach (string key in new[] { "trainers_1_steps_per_s", "trainers_2_steps_per_s", "speedup", "trainers_1_step_s", "trainers_1_member_s", "trainers_2_step_s",
                     "trainers_2_member_s", "baseline_whole_batch_one_process_ms", "machine_ceiling_speedup", "speedup_vs_ceiling", "kill_to_next_commit_s" })
            Assert.True(json.GetProperty(key).GetDouble() > 0, key);
        Assert.True(json.GetProperty("trainers_2_exchange_s").GetDouble() >= 0);
        // A member's time is part of its step.
        Assert.True(json.GetProperty("trainers_1_member_s").GetDouble() <= json.GetProperty("trainers_1_step_s").GetDouble() * 1.5);
        Assert.Equal(2, json.GetProperty("baseline_batch_share_processes_ms").GetArrayLength());
        // The straggler wait is part of a member's time; the ceiling is the median of its runs (3 by default).
        double wait = json.GetProperty("trainers_2_straggler_wait_s").GetDouble();
        Assert.InRange(wait, 0, json.GetProperty("trainers_2_member_s").GetDouble());
        // Which member was the slowest, as shares of the measured steps (a step committed by one member has none).
        var slowest = json.GetProperty("trainers_2_slowest_share").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.NotEmpty(slowest);
        Assert.All(slowest.Keys, k => Assert.Contains(k, new[] { "t1", "t2" }));
        Assert.InRange(slowest.Values.Sum(), 0.3, 1.01); // each printed to 2 decimals
        Assert.True(json.GetProperty("trainers_2_shares_rebalanced").GetInt32() >= 0); // how often the coordinator moved the split
        double[] ceilings = [.. json.GetProperty("machine_ceiling_speedup_runs").EnumerateArray().Select(e => e.GetDouble())];
        Assert.Equal(3, ceilings.Length);
        Assert.Equal(ceilings.Order().ElementAt(1), json.GetProperty("machine_ceiling_speedup").GetDouble());
        // speed-up and its ratio to the ceiling are the printed figures' own quotients.
        // The rates are printed to 3 decimals and the speed-up from the unrounded rates, so the printed quotient may
        // differ from the printed speed-up by the rounding of both rates (and of the speed-up itself).
        double one = json.GetProperty("trainers_1_steps_per_s").GetDouble(), two = json.GetProperty("trainers_2_steps_per_s").GetDouble();
        double speedup = two / one;
        Assert.Equal(speedup, json.GetProperty("speedup").GetDouble(), speedup * (0.0005 / one + 0.0005 / two) + 0.0005);
        // The lock-step ceiling: the same share processes waiting for each other after every step; whole ÷ their step.
        double whole = json.GetProperty("baseline_whole_batch_one_process_ms").GetDouble(), lockstepMs = json.GetProperty("baseline_batch_share_lockstep_ms").GetDouble();
        Assert.True(lockstepMs > 0);
        double lockstep = json.GetProperty("machine_lockstep_ceiling_speedup").GetDouble();
        Assert.Equal(whole / lockstepMs, lockstep, 0.05 / lockstepMs * (1 + whole / lockstepMs) + 0.0005); // printed to 0.1 ms and 3 decimals
        Assert.Equal(speedup / lockstep, json.GetProperty("speedup_vs_lockstep_ceiling").GetDouble(), 0.01);
        // The ceiling processes' CPU seconds per step, like the cluster's cpu_s_per_step: at most what their cores give in
        // a step's time (/proc counts in 10 ms ticks: 0.01 s per step on top for the two readings' rounding).
        JsonElement baselineCpu = json.GetProperty("baseline_cpu_s_per_step");
        double share = json.GetProperty("baseline_batch_share_processes_ms").EnumerateArray().Max(e => e.GetDouble());
        foreach ((string key, double ms) in new[] { ("whole_batch", whole), ("batch_share", share), ("batch_share_lockstep", lockstepMs) })
            Assert.InRange(baselineCpu.GetProperty(key).GetDouble(), 0, ms / 1000 * Environment.ProcessorCount + 0.01);
        // --flood: the cluster again under a flood of random bytes into its ports; it still trains and reports the flood it took.
        JsonElement flooded = json.GetProperty("flooded");
        Assert.True(flooded.GetProperty("trainers_2_step_s").GetDouble() > 0);
        Assert.True(flooded.GetProperty("flood_mb_s").GetDouble() > 0);
        Assert.True(flooded.GetProperty("flood_connections_per_s").GetDouble() > 0);
        Assert.True(flooded.GetProperty("cpu_s_per_step").GetProperty("coordinator").GetDouble() > 0);
        Assert.True(flooded.GetProperty("step_vs_flood_elsewhere").GetDouble() > 0);
        Assert.True(flooded.GetProperty("log_bytes_per_step").GetDouble() >= 0);
        // The control: the same flood into ports outside the cluster.
        JsonElement elsewhere = json.GetProperty("flood_elsewhere");
        Assert.True(elsewhere.GetProperty("trainers_2_step_s").GetDouble() > 0);
        Assert.True(elsewhere.GetProperty("flood_connections_per_s").GetDouble() > 0);
    }

    [Fact]
    public void DeterminismSlicesThatDoNotDivideTheBatchAreRefused()
    {
        var r = KtoProcess.Run(_dir, "bench", "cluster", "--batch", "4", "--full-determinism", "--determinism-slices", "3");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--determinism-slices must be at least 1 and divide --batch (4), got 3", r.Stderr);
    }
}
