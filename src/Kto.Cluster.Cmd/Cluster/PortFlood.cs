using System.Net;
using System.Net.Sockets;

namespace Kto.Cluster.Cmd.Cluster;

/// <summary>
/// What a stranger on the network can do to a cluster's ports without a certificate: connect, write random bytes as
/// fast as the peer takes them, and connect again when it closes (<c>kto bench cluster --flood</c>).
/// </summary>
internal static class PortFlood
{
    /// <summary>Random bytes written per connection at most before it is closed and opened again.</summary>
    public const int BytesPerConnection = 1 << 20;

    /// <summary>
    /// Floods <paramref name="targets"/> round robin from <paramref name="workers"/> concurrent loops until <paramref
    /// name="stop"/>; with <paramref name="connectionsPerSecond"/>, connection k opens no earlier than k / rate seconds
    /// after the start (so two targets that close at different speeds get the same flood), else as fast as they go.
    /// With <paramref name="from"/>, every connection is opened from that local address (a stranger's address that a
    /// firewall rule can tell from the cluster's hosts, e.g. 127.0.0.2 on a loopback).
    /// </summary>
    /// <returns>Bytes written, connections opened, and connection attempts refused (reset or unreachable).</returns>
    public static async Task<(long Bytes, long Connections, long Refused)> RunAsync(IReadOnlyList<IPEndPoint> targets, int workers, CancellationToken stop, double? connectionsPerSecond = null, IPAddress? from = null)
    {
        long bytes = 0, connections = 0, refused = 0, scheduled = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        async Task Worker(int index)
        {
            var rng = new Random(index);
            byte[] chunk = new byte[64 << 10];
            for (int next = index; !stop.IsCancellationRequested; next++)
            {
                rng.NextBytes(chunk);
                try
                {
                    if (connectionsPerSecond is { } rate)
                    {
                        TimeSpan due = TimeSpan.FromSeconds(Interlocked.Increment(ref scheduled) / rate) - clock.Elapsed;
                        if (due > TimeSpan.Zero) await Task.Delay(due, stop);
                    }
                    using var client = new TcpClient(targets[0].AddressFamily);
                    if (from is not null) client.Client.Bind(new IPEndPoint(from, 0));
                    try
                    {
                        await client.ConnectAsync(targets[next % targets.Count], stop);
                    }
                    catch (SocketException)
                    {
                        Interlocked.Increment(ref refused);
                        continue;
                    }
                    Interlocked.Increment(ref connections);
                    NetworkStream stream = client.GetStream();
                    for (int written = 0; written < BytesPerConnection && !stop.IsCancellationRequested; written += chunk.Length)
                    {
                        await stream.WriteAsync(chunk, stop);
                        Interlocked.Add(ref bytes, chunk.Length);
                    }
                }
                catch (Exception e) when (e is IOException or SocketException)
                {
                    // Closed on us (what the port should do): connect again.
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, workers).Select(Worker));
        return (Interlocked.Read(ref bytes), Interlocked.Read(ref connections), Interlocked.Read(ref refused));
    }
}

/// <summary>
/// The flood's control target: listening ports outside the cluster that read a connection's first bytes and close it,
/// as a refusing port does. Flooding them instead of the cluster's ports measures what the flood costs the machine
/// (the flooder, the kernel's loopback, minimal refusals), so the cluster's own share of a flooded step can be told.
/// </summary>
internal sealed class PortSink : IAsyncDisposable
{
    private readonly List<TcpListener> _listeners;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops;

    /// <summary>Listens on <paramref name="ports"/> free loopback ports.</summary>
    public PortSink(int ports)
    {
        _listeners = [.. Enumerable.Range(0, ports).Select(_ => new TcpListener(IPAddress.Loopback, 0))];
        foreach (TcpListener l in _listeners) l.Start();
        _loops = [.. _listeners.Select(AcceptLoop)];
    }

    /// <summary>Where the sink listens.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => [.. _listeners.Select(l => (IPEndPoint)l.LocalEndpoint)];

    private async Task AcceptLoop(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested) return;
                continue;
            }
            _ = RefuseAsync(s);
        }
    }

    /// <summary>Reads the first bytes (waiting at most a second for them) and closes, as a port refusing a stranger does.</summary>
    private async Task RefuseAsync(Socket s)
    {
        using (s)
        {
            byte[] first = new byte[16];
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            try
            {
                await s.ReceiveAsync(first, SocketFlags.None, timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (TcpListener l in _listeners) l.Stop();
        try
        {
            await Task.WhenAll(_loops);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        _stop.Dispose();
    }
}
