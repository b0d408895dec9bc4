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

    /// <summary>
    /// The wall (docs/cluster.md's firewall rule on one machine): a connection from an address outside --allow is
    /// refused in the kernel (reset, or dropped with --drop) while the allowed address connects; --open lifts it.
    /// Perl (Debian's essential perl-base) listens on 127.0.0.1 and connects from 127.0.0.1 and 127.0.0.2.
    /// </summary>
    [RigFact]
    public void TheWallRefusesEveryAddressButTheAllowedOnesAndOpenLiftsIt()
    {
        string name = $"kto-rig-wall-{Environment.ProcessId}";
        const string probe = """
            use IO::Socket::INET;
            my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16) or die "listen: $!";
            for my $src (qw(127.0.0.1 127.0.0.2)) {
              my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $l->sockport, LocalAddr => $src, Timeout => 2);
              print "$src ", ($c ? "connected" : "not connected: $!"), "\n";
            }
            """;
        Assert.Equal(0, Rig("up", "--name", name).ExitCode);
        try
        {
            string Probe() => Rig("exec", name, "--", "perl", "-e", probe) is { ExitCode: 0 } r ? r.Stdout : throw new Xunit.Sdk.XunitException("probe failed");
            Assert.Equal("127.0.0.1 connected\n127.0.0.2 connected\n", Probe()); // no wall yet

            Assert.Equal(0, Rig("wall", name, "--allow", "127.0.0.1").ExitCode);
            string walled = Probe();
            Assert.StartsWith("127.0.0.1 connected\n127.0.0.2 not connected: Connection refused", walled);

            Assert.Equal(0, Rig("wall", name, "--allow", "127.0.0.1", "--drop").ExitCode);
            string dropped = Probe();
            Assert.StartsWith("127.0.0.1 connected\n127.0.0.2 not connected:", dropped);
            Assert.DoesNotContain("refused", dropped); // silently dropped: the connect times out

            Assert.Equal(0, Rig("wall", name, "--open").ExitCode);
            Assert.Equal("127.0.0.1 connected\n127.0.0.2 connected\n", Probe());

            var bad = Rig("wall", name, "--allow", "everyone");
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("--allow needs IPv4 addresses separated by commas, got 'everyone'", bad.Stderr);
        }
        finally
        {
            Rig("down", name);
        }
    }

    /// <summary>
    /// <c>kto bench cluster --flood --flood-from 127.0.0.2</c> inside a rig whose wall allows only 127.0.0.1: every
    /// connection the stranger tries is refused in the kernel, none reaches the cluster, and the run trains on.
    /// (Without the wall the same flood's connections are accepted: BenchClusterTests.)
    /// </summary>
    [RigFact]
    public void BehindTheWallAStrangersFloodNeverReachesTheCluster()
    {
        string name = $"kto-rig-flood-{Environment.ProcessId}";
        string dir = Directory.CreateTempSubdirectory("kto-rig-flood-").FullName;
        Assert.Equal(0, Rig("up", "--name", name).ExitCode);
        try
        {
            Assert.Equal(0, Rig("wall", name, "--allow", "127.0.0.1").ExitCode);
            var r = Rig("exec", name, "--", "sh", "-c", $"cd '{dir}' && exec dotnet '{Kto}' bench cluster --layers 1 --width 16 --vocab 257 --tokens 16 --batch 4 --steps 3 --warmup 1 --flood --flood-rate 200 --flood-from 127.0.0.2");
            Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
            var json = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
            foreach (string phase in new[] { "flooded", "flood_elsewhere" })
            {
                JsonElement f = json.GetProperty(phase);
                Assert.True(f.GetProperty("flood_refused_per_s").GetDouble() > 0, phase);
                Assert.Equal(0, f.GetProperty("flood_connections_per_s").GetDouble());
                Assert.Equal(0, f.GetProperty("flood_mb_s").GetDouble());
            }
            Assert.True(json.GetProperty("flooded").GetProperty("trainers_2_step_s").GetDouble() > 0);
        }
        finally
        {
            Rig("down", name);
            Directory.Delete(dir, recursive: true);
        }
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
