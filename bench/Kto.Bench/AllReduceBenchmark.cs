using Kto.Domain.Cluster;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Kto.Cluster.Exchange;

namespace Kto.Bench;

/// <summary>
/// The coordinator side of <c>kto bench allreduce</c>: two processes on one machine, this one and a peer it has
/// started (<see cref="AllReducePeer"/>), measure over loopback
/// <list type="number">
/// <item>raw TCP: one stream coordinator → peer, then peer → coordinator, then both at once (1 MiB writes);</item>
/// <item>the ring all-reduce of a float buffer between the same two processes;</item>
/// </list>
/// in alternating rounds, each figure the median of its rounds. Each raw measurement moves as many bytes per
/// direction as the round's timed all-reduces do, over sockets configured like the ring's. The phases run in a
/// fixed script both sides follow, paced by one-byte signals on a control connection.
/// </summary>
public static class AllReduceBenchmark
{
    /// <summary>Connection kind a peer announces first: the control connection.</summary>
    internal const byte ControlKind = (byte)'C';

    /// <summary>Connection kind: the raw stream coordinator → peer.</summary>
    internal const byte ForwardKind = (byte)'F';

    /// <summary>Connection kind: the raw stream peer → coordinator.</summary>
    internal const byte ReverseKind = (byte)'R';

    /// <summary>
    /// Bytes per raw stream before the timed raw phases: the measured volume of one phase, at least 8 MiB and at most
    /// 64 MiB — enough for TCP's windows to open fully, and on a shaped slow link (a 100 Mbit/s rig) no longer than
    /// the measurement itself.
    /// </summary>
    internal static long RawWarmupBytes(AllReduceBenchOptions o) => Math.Clamp(o.RawBytes, 8L << 20, 64L << 20);

    /// <summary>Generation of the benchmark's ring: the only one it forms.</summary>
    internal const long Generation = 1;

    /// <summary>60 s for the peer process to start and connect: a cold <c>dotnet</c> start JIT-compiles on two busy cores.</summary>
    public static readonly TimeSpan PeerStartTimeout = TimeSpan.FromSeconds(60);

    /// <summary>30 s for the two ring members to find each other once both are running.</summary>
    public static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs the benchmark.</summary>
    /// <param name="o">What to measure.</param>
    /// <param name="startPeer">Starts the peer process with these arguments (after <c>kto bench allreduce-peer</c>)
    /// and returns a task that completes when that process exits.</param>
    /// <param name="ct">Cancels the run.</param>
    /// <exception cref="TimeoutException">The peer did not connect in time.</exception>
    /// <exception cref="IOException">The peer process exited before the end.</exception>
    public static async Task<AllReduceBenchResult> RunAsync(AllReduceBenchOptions o, Func<IReadOnlyList<string>, Task> startPeer, CancellationToken ct)
    {
        o.Validate();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        BenchChannel.Configure(listener, o.SocketKib << 10);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        await using RingEndpoint endpoint = await RingEndpoint.ListenAsync(IPAddress.Loopback, 0, o.Ring, ct);
        string[] peerArgs = ["--coordinator", listener.LocalEndPoint!.ToString()!, "--coordinator-ring", endpoint.LocalEndPoint.ToString(), .. o.ToArguments()];
        Task peerExited = startPeer(peerArgs);

        // Everything below stops as soon as the peer process is gone, instead of waiting on its sockets.
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _ = peerExited.ContinueWith(_ => CancelQuietly(run), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            return await MeasureAsync(o, listener, endpoint, run);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && peerExited.IsCompleted)
        {
            throw new IOException("the peer process exited before the benchmark finished (its messages are above)");
        }
    }

    private static async Task<AllReduceBenchResult> MeasureAsync(AllReduceBenchOptions o, Socket listener, RingEndpoint endpoint, CancellationTokenSource run)
    {
        CancellationToken ct = run.Token;
        var (control, forward, reverse) = await AcceptPeerAsync(listener, ct);
        using (control)
        using (forward)
        using (reverse)
        {
            int peerRingPort = checked((int)await control.ReceiveNumberAsync(ct));
            byte[] outBlock = new byte[BenchChannel.WriteBytes], inBlock = new byte[BenchChannel.WriteBytes];
            await ForwardAsync(RawWarmupBytes(o));
            await ReverseAsync(RawWarmupBytes(o));
            await DuplexAsync(RawWarmupBytes(o));

            IPEndPoint[] members = [endpoint.LocalEndPoint, new IPEndPoint(IPAddress.Loopback, peerRingPort)];
            await using Ring ring = await endpoint.JoinAsync(members, Generation, JoinTimeout, ct);
            var data = new float[o.BufferBytes / sizeof(float)];
            await RingAsync(o.Warmup);

            List<double> forwardRates = [], reverseRates = [], duplexRates = [], ringMs = [];
            for (int round = 0; round < o.Rounds; round++)
            {
                forwardRates.Add(Rate(o.RawBytes, await ForwardAsync(o.RawBytes)));
                reverseRates.Add(Rate(o.RawBytes, await ReverseAsync(o.RawBytes)));
                duplexRates.Add(Rate(o.RawBytes, await DuplexAsync(o.RawBytes)));
                ringMs.Add(Median(await RingAsync(o.Iterations)) * 1e3);
            }
            bool correct = AllReduceBenchData.IsSum(data);
            bool identical = (ulong)await control.ReceiveNumberAsync(ct) == GradientBuffer.Checksum(data);
            await control.SignalAsync(BenchChannel.Done, ct);

            double ms = Median(ringMs);
            return new AllReduceBenchResult(Median(forwardRates), Median(reverseRates), Median(duplexRates), ring.Size, ms, Rate(o.BufferBytes, ms / 1e3), correct, identical);

            async Task<double> ForwardAsync(long bytes)
            {
                long start = Stopwatch.GetTimestamp();
                await forward.StreamOutAsync(bytes, outBlock, ct);
                await control.ExpectAsync(BenchChannel.Done, ct);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }

            async Task<double> ReverseAsync(long bytes)
            {
                await control.SignalAsync(BenchChannel.Go, ct);
                long start = Stopwatch.GetTimestamp();
                await reverse.StreamInAsync(bytes, inBlock, ct);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }

            async Task<double> DuplexAsync(long bytes)
            {
                await control.SignalAsync(BenchChannel.Go, ct);
                long start = Stopwatch.GetTimestamp();
                await Task.WhenAll(forward.StreamOutAsync(bytes, outBlock, ct), reverse.StreamInAsync(bytes, inBlock, ct), control.ExpectAsync(BenchChannel.Done, ct));
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }

            // Each all-reduce starts when the peer has filled its buffer too, so the time is the exchange's alone.
            async Task<List<double>> RingAsync(int iterations)
            {
                var seconds = new List<double>();
                for (int i = 0; i < iterations; i++)
                {
                    AllReduceBenchData.Fill(data, ring.Rank);
                    await control.ExpectAsync(BenchChannel.Ready, ct);
                    long start = Stopwatch.GetTimestamp();
                    await ring.AllReduceSumAsync(data, ct);
                    seconds.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
                return seconds;
            }
        }
    }

    private static async Task<(BenchChannel Control, BenchChannel Forward, BenchChannel Reverse)> AcceptPeerAsync(Socket listener, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(PeerStartTimeout);
        var byKind = new Dictionary<byte, BenchChannel>();
        try
        {
            while (byKind.Count < 3)
            {
                Socket s = await listener.AcceptAsync(timeout.Token);
                s.NoDelay = true;
                var channel = new BenchChannel(s);
                byte[] kind = new byte[1];
                if (await s.ReceiveAsync(kind, SocketFlags.None, timeout.Token) != 1 || byKind.ContainsKey(kind[0]) ||
                    kind[0] is not (ControlKind or ForwardKind or ReverseKind))
                {
                    channel.Dispose();
                    continue;
                }
                byKind[kind[0]] = channel;
            }
            return (byKind[ControlKind], byKind[ForwardKind], byKind[ReverseKind]);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            foreach (BenchChannel c in byKind.Values) c.Dispose();
            throw new TimeoutException($"the peer process did not connect within {PeerStartTimeout.TotalSeconds:0} s");
        }
        catch
        {
            foreach (BenchChannel c in byKind.Values) c.Dispose();
            throw;
        }
    }

    private static double Rate(long bytes, double seconds) => bytes / seconds / 1e6;

    private static void CancelQuietly(CancellationTokenSource cts)
    {
        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The run had already finished when the peer exited.
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
