using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kto.Cluster.Cmd.Tests;

/// <summary><c>kto bench allreduce</c> through the built tool: two real processes.</summary>
public sealed partial class BenchAllReduceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-bench-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take(); // it checks the output's shape, not its figures

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void BenchAllReducePrintsRawAndRingFiguresFromTwoProcesses()
    {
        var r = KtoProcess.Run(_dir, "bench", "allreduce", "--mib", "1", "--rounds", "1", "--iterations", "2", "--warmup", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim()).RootElement;
        Assert.Equal("allreduce", json.GetProperty("bench").GetString());
        Assert.Equal(2, json.GetProperty("processes").GetInt32());
        foreach (string key in new[] { "raw_mb_s", "raw_forward_mb_s", "raw_reverse_mb_s", "raw_duplex_mb_s", "allreduce_ms", "algbw_mb_s", "busbw_mb_s", "busbw_vs_raw", "busbw_vs_raw_duplex" })
            Assert.True(json.GetProperty(key).GetDouble() > 0, key);
        Assert.True(json.GetProperty("correct").GetBoolean());
        Assert.True(json.GetProperty("identical").GetBoolean());
        int peer = PeerId(r.Stderr);
        Assert.True(HasExited(peer, TimeSpan.FromSeconds(10)), $"peer {peer} still runs");
    }

    [Fact]
    public void BenchAllReduceOverTlsGivesTheSameBitsAndRemovesItsThrowAwayCertificates()
    {
        string before = string.Join(",", Directory.GetDirectories(Path.GetTempPath(), "kto-bench-tls-*"));
        var r = KtoProcess.Run(_dir, "bench", "allreduce", "--tls", "--mib", "1", "--rounds", "1", "--iterations", "2", "--warmup", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim()).RootElement;
        Assert.True(json.GetProperty("tls").GetBoolean());
        Assert.True(json.GetProperty("busbw_vs_raw").GetDouble() > 0);
        Assert.True(json.GetProperty("correct").GetBoolean());
        Assert.True(json.GetProperty("identical").GetBoolean());
        Assert.DoesNotContain("TLS refused", r.Stderr);
        Assert.Equal(before, string.Join(",", Directory.GetDirectories(Path.GetTempPath(), "kto-bench-tls-*")));
    }

    [Fact]
    public void ThePeerProcessDiesWithItsParentEvenWhenTheParentIsKilled()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "kto.dll");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = _dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { dll, "bench", "allreduce", "--mib", "8", "--rounds", "1000" }) psi.ArgumentList.Add(a);
        using var parent = Process.Start(psi)!;
        _ = parent.StandardOutput.ReadToEndAsync();
        int peer = -1;
        try
        {
            string? line;
            while (peer < 0 && (line = parent.StandardError.ReadLine()) is not null)
            {
                Match m = PeerLine().Match(line);
                if (m.Success) peer = int.Parse(m.Groups[1].Value);
            }
            Assert.True(peer > 0, "the parent never reported its peer");
            _ = parent.StandardError.ReadToEndAsync();
        }
        finally
        {
            parent.Kill(entireProcessTree: false); // SIGKILL: no handler of the parent runs
        }
        parent.WaitForExit();
        Assert.True(HasExited(peer, TimeSpan.FromSeconds(20)), $"peer {peer} outlived its killed parent");
    }

    private static int PeerId(string stderr)
    {
        Match m = PeerLine().Match(stderr);
        Assert.True(m.Success, stderr);
        return int.Parse(m.Groups[1].Value);
    }

    private static bool HasExited(int pid, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                if (p.HasExited) return true;
            }
            catch (ArgumentException)
            {
                return true; // no such process any more
            }
            Thread.Sleep(100);
        }
        return false;
    }

    [GeneratedRegex(@"peer process (\d+) started")]
    private static partial Regex PeerLine();
}
