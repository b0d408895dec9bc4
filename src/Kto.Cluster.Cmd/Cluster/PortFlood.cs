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

    /// <summary>Floods <paramref name="targets"/> round robin from <paramref name="workers"/> concurrent loops until <paramref name="stop"/>.</summary>
    /// <returns>Bytes written and connections opened.</returns>
    public static async Task<(long Bytes, long Connections)> RunAsync(IReadOnlyList<IPEndPoint> targets, int workers, CancellationToken stop)
    {
        long bytes = 0, connections = 0;
        async Task Worker(int index)
        {
            var rng = new Random(index);
            byte[] chunk = new byte[64 << 10];
            for (int next = index; !stop.IsCancellationRequested; next++)
            {
                rng.NextBytes(chunk);
                try
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(targets[next % targets.Count], stop);
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
        return (Interlocked.Read(ref bytes), Interlocked.Read(ref connections));
    }
}
