using Kto.Domain.Cluster;
using System.Net;
using System.Net.Sockets;
using Kto.Cluster.Exchange;

namespace Kto.Bench;

/// <summary>The peer side of <c>kto bench allreduce</c>: the script of <see cref="AllReduceBenchmark"/>, mirrored.</summary>
public static class AllReducePeer
{
    /// <summary>Connects to the coordinator at <paramref name="coordinator"/> and plays the peer's part.</summary>
    /// <param name="coordinator">The coordinator's control listener.</param>
    /// <param name="coordinatorRing">The coordinator's ring endpoint (rank 0).</param>
    /// <param name="o">The same options the coordinator runs with.</param>
    /// <param name="ct">Cancels the run.</param>
    public static async Task RunAsync(IPEndPoint coordinator, IPEndPoint coordinatorRing, AllReduceBenchOptions o, CancellationToken ct)
    {
        o.Validate();
        await using RingEndpoint endpoint = await RingEndpoint.ListenAsync(IPAddress.Loopback, 0, o.Ring, ct);
        using BenchChannel control = await ConnectAsync(coordinator, AllReduceBenchmark.ControlKind, o, ct);
        using BenchChannel forward = await ConnectAsync(coordinator, AllReduceBenchmark.ForwardKind, o, ct);
        using BenchChannel reverse = await ConnectAsync(coordinator, AllReduceBenchmark.ReverseKind, o, ct);
        await control.SendNumberAsync(endpoint.LocalEndPoint.Port, ct);
        byte[] outBlock = new byte[BenchChannel.WriteBytes], inBlock = new byte[BenchChannel.WriteBytes];
        await ForwardAsync(AllReduceBenchmark.RawWarmupBytes(o));
        await ReverseAsync(AllReduceBenchmark.RawWarmupBytes(o));
        await DuplexAsync(AllReduceBenchmark.RawWarmupBytes(o));

        IPEndPoint[] members = [coordinatorRing, endpoint.LocalEndPoint];
        await using Ring ring = await endpoint.JoinAsync(members, AllReduceBenchmark.Generation, AllReduceBenchmark.JoinTimeout, ct);
        var data = new float[o.BufferBytes / sizeof(float)];
        await RingAsync(o.Warmup);
        for (int round = 0; round < o.Rounds; round++)
        {
            await ForwardAsync(o.RawBytes);
            await ReverseAsync(o.RawBytes);
            await DuplexAsync(o.RawBytes);
            await RingAsync(o.Iterations);
        }
        await control.SendNumberAsync((long)GradientBuffer.Checksum(data), ct);
        await control.ExpectAsync(BenchChannel.Done, ct);

        async Task ForwardAsync(long bytes)
        {
            await forward.StreamInAsync(bytes, inBlock, ct);
            await control.SignalAsync(BenchChannel.Done, ct);
        }

        async Task ReverseAsync(long bytes)
        {
            await control.ExpectAsync(BenchChannel.Go, ct);
            await reverse.StreamOutAsync(bytes, outBlock, ct);
        }

        async Task DuplexAsync(long bytes)
        {
            await control.ExpectAsync(BenchChannel.Go, ct);
            await Task.WhenAll(reverse.StreamOutAsync(bytes, outBlock, ct), ForwardAsync(bytes));
        }

        async Task RingAsync(int iterations)
        {
            for (int i = 0; i < iterations; i++)
            {
                AllReduceBenchData.Fill(data, ring.Rank);
                await control.SignalAsync(BenchChannel.Ready, ct);
                await ring.AllReduceSumAsync(data, ct);
            }
        }
    }

    private static async Task<BenchChannel> ConnectAsync(IPEndPoint coordinator, byte kind, AllReduceBenchOptions o, CancellationToken ct)
    {
        var socket = new Socket(coordinator.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        var channel = new BenchChannel(socket);
        try
        {
            BenchChannel.Configure(socket, o.SocketKib << 10);
            await socket.ConnectAsync(coordinator, ct);
            await socket.SendAsync(new[] { kind }, SocketFlags.None, ct);
            return channel;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }
}
