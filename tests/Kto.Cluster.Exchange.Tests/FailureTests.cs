namespace Kto.Cluster.Exchange.Tests;

public sealed class FailureTests
{
    private const int TestTimeoutMs = 60_000;

    /// <summary>Well below the 30 s progress timeout: a break seen within it came through the closed connections.</summary>
    private static readonly TimeSpan Quickly = TimeSpan.FromSeconds(10);

    [Theory(Timeout = TestTimeoutMs)]
    [InlineData(2, 1)]
    [InlineData(3, 1)]
    [InlineData(4, 2)]
    public async Task KillingAMemberMidAllReduceBreaksEveryOtherMemberQuickly(int n, int victim)
    {
        await using var ring = await LoopbackRing.StartAsync(n, new RingOptions { MaxChunkBytes = 64 << 10 });
        float[][] data = Enumerable.Range(0, n).Select(r => LoopbackRing.Data(r, 1 << 20)).ToArray();
        // Rank 0 holds back, so every other member, the victim included, is stuck inside its all-reduce.
        var running = Enumerable.Range(1, n - 1).ToDictionary(r => r, r => ring.Rings[r].AllReduceSumAsync(data[r], CancellationToken.None));
        await Task.Delay(300);
        Assert.All(running.Values, t => Assert.False(t.IsCompleted));

        await ring.Endpoints[victim].DisposeAsync();

        foreach (var (rank, task) in running.Where(p => p.Key != victim))
        {
            var e = await Assert.ThrowsAsync<RingBrokenException>(() => task.WaitAsync(Quickly));
            Assert.Equal(1, e.Generation);
        }
        await Assert.ThrowsAsync<RingBrokenException>(() => running[victim].WaitAsync(Quickly));
        // The late member finds the ring broken too, instead of waiting for its timeout.
        await Assert.ThrowsAsync<RingBrokenException>(() => ring.Rings[0].AllReduceSumAsync(data[0], CancellationToken.None).WaitAsync(Quickly));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AMemberThatStaysConnectedButSilentTimesOutNamingIt()
    {
        await using var ring = await LoopbackRing.StartAsync(2, new RingOptions { ProgressTimeout = TimeSpan.FromSeconds(1) });
        var e = await Assert.ThrowsAsync<RingBrokenException>(
            () => ring.Rings[0].AllReduceSumAsync(new float[1000], CancellationToken.None).WaitAsync(Quickly));
        Assert.Equal(1, e.PeerRank);
        Assert.Contains("no progress", e.Message, StringComparison.Ordinal);
        Assert.True(ring.Rings[0].IsBroken);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task CancellingAnAllReduceThrowsOperationCanceledAndBreaksTheRing()
    {
        await using var ring = await LoopbackRing.StartAsync(2);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ring.Rings[0].AllReduceSumAsync(new float[1000], cts.Token).WaitAsync(Quickly));
        Assert.True(ring.Rings[0].IsBroken);
        // The peer arriving later sees the connection closed.
        await Assert.ThrowsAsync<RingBrokenException>(() => ring.Rings[1].AllReduceSumAsync(new float[1000], CancellationToken.None).WaitAsync(Quickly));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AJoinWhosePredecessorNeverComesFailsAtTheTimeout()
    {
        RingEndpoint[] endpoints = await LoopbackRing.ListenAsync(2);
        try
        {
            var members = endpoints.Select(e => e.LocalEndPoint).ToList();
            var e = await Assert.ThrowsAsync<RingBrokenException>(
                () => endpoints[0].JoinAsync(members, 1, TimeSpan.FromMilliseconds(500), CancellationToken.None).WaitAsync(Quickly));
            Assert.Equal(1, e.PeerRank);
        }
        finally
        {
            foreach (RingEndpoint e in endpoints) await e.DisposeAsync();
        }
    }
}
