using System.Diagnostics;
using System.Text.Json;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// Storage faults with real processes and a real full filesystem (a small tmpfs): the journal's disk full mid-run,
/// output_dir full (metrics.jsonl and checkpoints). Waits are hang guards, never timings.
/// </summary>
public sealed class StorageFaultTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    [TmpfsFact]
    public async Task AJournalOnAFullDiskHoldsTheRunVisiblyUntilSpaceIsFreedThenTheRunCompletes()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 160, learningRate: 1e-4);
        using var runDisk = SmallDisk.Mount(Path.Combine(cluster.Dir, "run"), 24);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2", "--exit-when-done");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("step 20/", cluster.Guard);

        runDisk.Fill();
        await coordinator.WaitFor(l => l.Contains("failing since", StringComparison.Ordinal) && l.Contains("journal", StringComparison.Ordinal), cluster.Guard, "the journal reported failing");
        // It keeps trying with a back-off, and says so in `run status` meanwhile; nothing is committed.
        await coordinator.WaitFor("(2 attempt(s))", cluster.Guard);
        int committed = coordinator.Commits.Count;
        string status = KtoTool.Run(cluster.Port, "run", "status");
        Output.WriteLine(status);
        Assert.Contains("WARNING: journal", status);
        Assert.Contains("database or disk is full", status);
        Assert.Equal(committed, coordinator.Commits.Count);

        runDisk.Free();
        await coordinator.WaitFor("works again", cluster.Guard);
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
        AssertCompleteMetrics(cluster);
    }

    [TmpfsFact]
    public async Task AFullOutputDirLosesNoMetricsLineLeavesNoPartialCheckpointAndTheRunCompletesOnceSpaceIsFreed()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 160, learningRate: 1e-4);
        using var outDisk = SmallDisk.Mount(cluster.OutputDir, 24);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2", "--exit-when-done");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await coordinator.WaitFor("step 10/", cluster.Guard);

        outDisk.Fill();
        // Training goes on (the journal is elsewhere); the metrics and the checkpoint writes fail visibly.
        await coordinator.WaitFor(l => l.Contains("metrics.jsonl", StringComparison.Ordinal) && l.Contains("No space left", StringComparison.Ordinal), cluster.Guard, "metrics.jsonl reported failing");
        await coordinator.WaitFor(l => l.Contains("checkpoint after step", StringComparison.Ordinal) && l.Contains("failed on", StringComparison.Ordinal), cluster.Guard, "a checkpoint reported failing");
        int failingAt = coordinator.Commits.Count;
        await coordinator.WaitFor($"step {failingAt + 12}/", cluster.Guard);
        string status = KtoTool.Run(cluster.Port, "run", "status");
        Output.WriteLine(status);
        Assert.Contains("WARNING: checkpoint storage failing", status);
        Assert.Contains("WARNING: metrics storage failing", status);

        outDisk.Free();
        await coordinator.WaitFor("writable again", cluster.Guard);
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        Assert.Empty(Directory.GetDirectories(cluster.OutputDir, ".checkpoint-*"));
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
        AssertCompleteMetrics(cluster);
    }
}

/// <summary>Runs <c>kto 127.0.0.1:PORT …</c> (the built command-line tool of this configuration) and returns its output.</summary>
internal static class KtoTool
{
    public static string Run(int port, params string[] args) => Run(port, null, args);

    /// <summary>Runs the tool, inside <paramref name="rig"/>'s namespace when given.</summary>
    public static string Run(int port, Kto.Cluster.Tests.Rig.NetRig? rig, params string[] args) => Run(port, rig, null, args);

    /// <summary>Runs the tool with <paramref name="input"/> on its standard input (its interactive mode reads commands from there).</summary>
    public static string RunWithInput(int port, string input, params string[] args) => Run(port, null, input, args);

    private static string Run(int port, Kto.Cluster.Tests.Rig.NetRig? rig, string? input, string[] args)
    {
        // tests/Kto.Cluster.GpuNode.Tests/bin/CONFIG/net10.0/ → src/Kto.Cluster.Cmd/bin/CONFIG/net10.0/kto.dll
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string framework = bin.Name, configuration = bin.Parent!.Name;
        string root = bin.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        string kto = Path.Combine(root, "src", "Kto.Cluster.Cmd", "bin", configuration, framework, "kto.dll");
        if (!File.Exists(kto)) throw new FileNotFoundException($"the kto tool is not built at {kto} (build src/Kto.Cluster.Cmd in {configuration})", kto);
        string[] all = [kto, $"127.0.0.1:{port}", .. args];
        ProcessStartInfo psi = rig?.Wrap(null, "dotnet", all) ?? new ProcessStartInfo("dotnet", all) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.RedirectStandardInput = input is not null;
        using Process p = Process.Start(psi)!;
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        Task<string> err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(1))) throw new TimeoutException($"kto {string.Join(' ', args)} did not end");
        return stdout + err.Result;
    }
}
