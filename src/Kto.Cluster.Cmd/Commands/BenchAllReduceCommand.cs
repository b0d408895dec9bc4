using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Kto.Bench;
using Kto.Cluster.Core.Security;
using Kto.Cluster.Exchange;
using Kto.Cluster.GpuNode;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto bench allreduce</c>: raw TCP against the ring all-reduce between two processes; and the hidden
/// <c>kto bench allreduce-peer</c> that the first starts as its second process.
/// </summary>
internal static class BenchAllReduceCommand
{
    /// <summary>The visible command.</summary>
    public static Command Create()
    {
        var (mib, rounds, iterations, warmup, chunk, socket) = CommonBenchOptions();
        var tls = new Option<bool>("--tls") { Description = "the ring over TLS with mutual authentication, as hosts with a host config \"tls\" run it (a throw-away CA and certificate are made for the run)" };
        var cmd = new Command("allreduce", "ring all-reduce vs raw TCP between two kto processes on this machine (starts the second itself)")
        {
            mib, rounds, iterations, warmup, chunk, socket, tls,
        };
        cmd.SetAction(parse => Guard(() =>
        {
            var o = Options(parse, mib, rounds, iterations, warmup, chunk, socket);
            o.Validate();
            string? tlsDir = parse.GetValue(tls) ? ThrowAwayCertificates() : null;
            using ClusterTls? hostTls = tlsDir is null ? null : OpenTls(tlsDir);
            if (hostTls is not null) o = o with { TlsDir = tlsDir, Tls = TrainerEngine.RingTlsOf(hostTls, reason => Console.Error.WriteLine($"bench allreduce: TLS refused: {reason}")) };
            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
            Console.CancelKeyPress += onCancel;
            try
            {
                AllReduceBenchResult r = RunAsync(o, cancel.Token).GetAwaiter().GetResult();
                Console.WriteLine(Json(o, r));
                return r.Correct && r.Identical ? 0 : 1;
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
                if (tlsDir is not null) Directory.Delete(tlsDir, recursive: true);
            }
        }));
        return cmd;
    }

    /// <summary>The peer command, hidden from help: only <c>kto bench allreduce</c> starts it.</summary>
    public static Command CreatePeer()
    {
        var (mib, rounds, iterations, warmup, chunk, socket) = CommonBenchOptions();
        var coordinator = new Option<string>("--coordinator") { Required = true, Description = "the coordinator's control address:port" };
        var coordinatorRing = new Option<string>("--coordinator-ring") { Required = true, Description = "the coordinator's ring address:port" };
        var tlsDir = new Option<string>("--tls-dir") { Description = "the first process's throw-away CA and certificate (its --tls)" };
        var cmd = new Command("allreduce-peer", "the second process of `kto bench allreduce`")
        {
            coordinator, coordinatorRing, mib, rounds, iterations, warmup, chunk, socket, tlsDir,
        };
        cmd.Hidden = true;
        cmd.SetAction(parse => Guard(() =>
        {
            var o = Options(parse, mib, rounds, iterations, warmup, chunk, socket);
            using ClusterTls? hostTls = parse.GetValue(tlsDir) is { } dir ? OpenTls(dir) : null;
            if (hostTls is not null) o = o with { Tls = TrainerEngine.RingTlsOf(hostTls, reason => Console.Error.WriteLine($"bench allreduce-peer: TLS refused: {reason}")) };
            using var cancel = new CancellationTokenSource();
            // Lifeline: the parent holds our standard input open; end of file means it is gone.
            _ = Task.Run(() =>
            {
                while (Console.In.Read() >= 0)
                {
                }
                cancel.Cancel();
                Environment.Exit(3);
            });
            AllReducePeer.RunAsync(IPEndPoint.Parse(parse.GetValue(coordinator)!), IPEndPoint.Parse(parse.GetValue(coordinatorRing)!), o, cancel.Token)
                .GetAwaiter().GetResult();
            return 0;
        }));
        return cmd;
    }

    /// <summary>A temporary folder with a CA and one host certificate (both processes present it), valid for a day.</summary>
    private static string ThrowAwayCertificates()
    {
        string dir = Directory.CreateTempSubdirectory("kto-bench-tls-").FullName;
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using var ca = ClusterCertificates.CreateAuthority(dir, "kto bench CA", TimeSpan.FromDays(1));
        ClusterCertificates.Issue(ca, dir, "bench", CertificateHolder.Host, [], [IPAddress.Loopback], now.AddMinutes(-5), now.AddDays(1), null).Dispose();
        return dir;
    }

    private static ClusterTls OpenTls(string dir) =>
        ClusterTls.Load(Path.Combine(dir, "bench.pfx"), null, Path.Combine(dir, ClusterCertificates.CaCertificateFile), CertificateHolder.Host);

    private static async Task<AllReduceBenchResult> RunAsync(AllReduceBenchOptions o, CancellationToken ct)
    {
        PeerProcess? peer = null;
        try
        {
            return await AllReduceBenchmark.RunAsync(o, args =>
            {
                peer = PeerProcess.Start(["bench", "allreduce-peer", .. args]);
                Console.Error.WriteLine($"bench allreduce: peer process {peer.Id} started");
                return peer.Exited;
            }, ct);
        }
        catch
        {
            peer?.Kill();
            throw;
        }
        finally
        {
            if (peer is not null) await peer.DisposeAsync();
        }
    }

    private static (Option<int> Mib, Option<int> Rounds, Option<int> Iterations, Option<int> Warmup, Option<int> ChunkKib, Option<int> SocketKib) CommonBenchOptions() =>
    (
        new Option<int>("--mib") { DefaultValueFactory = _ => AllReduceBenchOptions.DefaultMib, Description = "float buffer to all-reduce, in MiB" },
        new Option<int>("--rounds") { DefaultValueFactory = _ => AllReduceBenchOptions.DefaultRounds, Description = "alternating rounds of raw and ring measurements (figures are medians over rounds)" },
        new Option<int>("--iterations") { DefaultValueFactory = _ => AllReduceBenchOptions.DefaultIterations, Description = "timed all-reduces per round" },
        new Option<int>("--warmup") { DefaultValueFactory = _ => AllReduceBenchOptions.DefaultWarmup, Description = "untimed all-reduces first" },
        new Option<int>("--chunk-kib") { DefaultValueFactory = _ => RingDefaults.MaxChunkBytes >> 10, Description = "largest ring frame payload, in KiB" },
        new Option<int>("--socket-kib") { DefaultValueFactory = _ => RingDefaults.SocketBufferBytes >> 10, Description = "socket send/receive buffers, in KiB (0 = OS auto-tuning)" }
    );

    private static AllReduceBenchOptions Options(ParseResult parse, Option<int> mib, Option<int> rounds, Option<int> iterations, Option<int> warmup, Option<int> chunk, Option<int> socket) => new()
    {
        Mib = parse.GetValue(mib), Rounds = parse.GetValue(rounds), Iterations = parse.GetValue(iterations), Warmup = parse.GetValue(warmup),
        ChunkKib = parse.GetValue(chunk), SocketKib = parse.GetValue(socket),
    };

    /// <summary><see cref="CommonOptions.Guard"/>, plus the network failures a two-process benchmark can meet.</summary>
    private static int Guard(Func<int> body) => CommonOptions.Guard(() =>
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is RingBrokenException or IOException or SocketException or TimeoutException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("error: cancelled");
            return 1;
        }
    });

    private static string Json(AllReduceBenchOptions o, AllReduceBenchResult r) => string.Create(CultureInfo.InvariantCulture,
        $"{{\"bench\":\"allreduce\",\"processes\":{r.Members},\"tls\":{(o.Tls is null ? "false" : "true")},\"mib\":{o.Mib},\"rounds\":{o.Rounds},\"iterations\":{o.Iterations},\"chunk_kib\":{o.ChunkKib},\"socket_kib\":{o.SocketKib}," +
        $"\"raw_mb_s\":{r.RawMBps:0},\"raw_forward_mb_s\":{r.RawForwardMBps:0},\"raw_reverse_mb_s\":{r.RawReverseMBps:0},\"raw_duplex_mb_s\":{r.RawDuplexMBps:0}," +
        $"\"allreduce_ms\":{r.MedianMs:0.00},\"algbw_mb_s\":{r.AlgorithmMBps:0},\"busbw_mb_s\":{r.BusMBps:0}," +
        $"\"busbw_vs_raw\":{r.BusVsRaw:0.000},\"busbw_vs_raw_duplex\":{r.BusVsRawDuplex:0.000},\"correct\":{(r.Correct ? "true" : "false")},\"identical\":{(r.Identical ? "true" : "false")}}}");
}
