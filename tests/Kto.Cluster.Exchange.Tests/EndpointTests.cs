using System.Net;
using System.Net.Sockets;

namespace Kto.Cluster.Exchange.Tests;

public sealed class EndpointTests
{
    private const int TestTimeoutMs = 60_000;

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AStrangersConnectionWithGarbageDoesNotDisturbTheRing()
    {
        RingEndpoint[] endpoints = await LoopbackRing.ListenAsync(2);
        try
        {
            using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await stranger.ConnectAsync(endpoints[1].LocalEndPoint);
            await stranger.SendAsync(new byte[] { 0xFF, 0x7F, 1, 2, 3, 4, 5 }, SocketFlags.None);

            var members = endpoints.Select(e => e.LocalEndPoint).ToList();
            Ring[] rings = await Task.WhenAll(endpoints.Select(e => e.JoinAsync(members, 1, LoopbackRing.JoinTimeout, CancellationToken.None)));
            float[][] data = [[1, 2, 3], [10, 20, 30]];
            await Task.WhenAll(rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));
            Assert.All(data, d => Assert.Equal(new float[] { 11, 22, 33 }, d));
            // The stranger was hung up on.
            var buffer = new byte[16];
            Assert.Equal(0, await stranger.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            foreach (RingEndpoint e in endpoints) await e.DisposeAsync();
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AnEndpointNotInTheMemberListMustNameItsRank()
    {
        await using RingEndpoint endpoint = await RingEndpoint.ListenAsync(IPAddress.Loopback, 0, CancellationToken.None);
        var others = new[] { new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2) };
        await Assert.ThrowsAsync<ArgumentException>(() => endpoint.JoinAsync(others, 1, LoopbackRing.JoinTimeout, CancellationToken.None));
        Ring solo = await endpoint.JoinAsync([endpoint.LocalEndPoint], 1, LoopbackRing.JoinTimeout, CancellationToken.None);
        float[] data = [1.5f];
        await solo.AllReduceSumAsync(data, CancellationToken.None);
        Assert.Equal(1.5f, data[0]);
        Assert.Equal(1, solo.Size);
    }
}
