using System.Net;

namespace Kto.Cluster.Exchange.Tests;

/// <summary>N ring members in this process on loopback, joined to one generation.</summary>
internal sealed class LoopbackRing : IAsyncDisposable
{
    public static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(20);

    private LoopbackRing(RingEndpoint[] endpoints, Ring[] rings)
    {
        Endpoints = endpoints;
        Rings = rings;
    }

    public RingEndpoint[] Endpoints { get; }

    public Ring[] Rings { get; }

    public IReadOnlyList<IPEndPoint> Members => Endpoints.Select(e => e.LocalEndPoint).ToList();

    public static async Task<RingEndpoint[]> ListenAsync(int n, RingOptions? options = null) =>
        await Task.WhenAll(Enumerable.Range(0, n).Select(_ => RingEndpoint.ListenAsync(IPAddress.Loopback, 0, options ?? RingOptions.Default, CancellationToken.None)));

    public static async Task<LoopbackRing> StartAsync(int n, RingOptions? options = null, long generation = 1)
    {
        RingEndpoint[] endpoints = await ListenAsync(n, options);
        var members = endpoints.Select(e => e.LocalEndPoint).ToList();
        Ring[] rings = await Task.WhenAll(endpoints.Select(e => e.JoinAsync(members, generation, JoinTimeout, CancellationToken.None)));
        return new LoopbackRing(endpoints, rings);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (RingEndpoint e in Endpoints) await e.DisposeAsync();
    }

    /// <summary>Values in [-1, 1) that differ per rank and element.</summary>
    public static float[] Data(int rank, int length, int seed = 7)
    {
        var random = new Random(seed * 1000 + rank);
        var data = new float[length];
        for (int i = 0; i < length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return data;
    }
}
