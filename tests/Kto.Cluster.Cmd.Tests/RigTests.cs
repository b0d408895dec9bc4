using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Text.Json;
using Kto.Cluster.Tests.Rig;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>scripts/netns-rig.sh: the shaped loopback caps what crosses it, loss is applied, and the namespace is gone afterwards.</summary>
public sealed class RigTests : IDisposable
{
    private readonly MachineSlot _slot = MachineSlot.TakeAll(); // timing is its subject: it runs alone

    public void Dispose() => _slot.Dispose();

    private static KtoProcess.Result Rig(params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(KtoProcess.RepoRoot(), "scripts", "netns-rig.sh"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return new KtoProcess.Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Kto => Path.Combine(AppContext.BaseDirectory, "kto.dll");

    [RigFact]
    public void AnAllReduceInsideA100MbitRigIsCappedByTheLinkAndTheNamespaceIsRemoved()
    {
        string name = $"kto-rig-test-{Environment.ProcessId}";
        var r = Rig("run", "--rate", "100mbit", "--loss", "1", "--name", name, "--", "dotnet", Kto, "bench", "allreduce", "--mib", "2", "--rounds", "1", "--iterations", "2", "--warmup", "1");
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        Assert.Contains($"rig: namespace {name}, lo 100mbit, loss 1 %", r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.True(json.GetProperty("identical").GetBoolean());
        // 100 Mbit/s is 12.5 MB/s: shaping caps the raw stream (unshaped loopback here carries ~3 GB/s). A cap, not a
        // speed requirement: a slow machine only lowers the figure.
        double raw = json.GetProperty("raw_mb_s").GetDouble();
        Assert.InRange(raw, 0.1, 12.5 * 1.2);
        Assert.DoesNotContain(name, ListNamespaces()); // cleaned up
    }

    [RigFact]
    public void BadArgumentsAreRefusedAndTheCommandsStatusIsKept()
    {
        var bad = Rig("run", "--loss", "150", "--", "true");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--loss must be an integer percentage 0–100, got 150", bad.Stderr);
        Assert.Equal(3, Rig("run", "--", "sh", "-c", "exit 3").ExitCode);
    }

    private static string ListNamespaces()
    {
        var psi = new ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string s = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return s;
    }
}
