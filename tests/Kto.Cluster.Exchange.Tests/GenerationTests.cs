namespace Kto.Cluster.Exchange.Tests;

public sealed class GenerationTests
{
    private const int TestTimeoutMs = 60_000;
    private static readonly TimeSpan Quickly = TimeSpan.FromSeconds(10);

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AJoinForAnOlderGenerationIsRefusedAtOnce()
    {
        await using var ring = await LoopbackRing.StartAsync(2, generation: 5);
        RingEndpoint[] late = await LoopbackRing.ListenAsync(1);
        await using RingEndpoint stale = late[0];
        // The stale member believes in generation 4 with member 1 of the live ring as its successor.
        var members = new[] { stale.LocalEndPoint, ring.Endpoints[1].LocalEndPoint };
        var e = await Assert.ThrowsAsync<RingBrokenException>(
            () => stale.JoinAsync(members, 4, LoopbackRing.JoinTimeout, CancellationToken.None).WaitAsync(Quickly));
        Assert.Equal(1, e.PeerRank);
        Assert.Contains("older", e.Message, StringComparison.Ordinal);
        // The live ring is untouched.
        float[][] data = [[1, 2], [3, 4]];
        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));
        Assert.All(data, d => Assert.Equal(new float[] { 4, 6 }, d));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task SurvivorsJoiningANewerGenerationNeverMixWithTheOldOne()
    {
        await using var ring = await LoopbackRing.StartAsync(3, generation: 1);
        Ring[] old = ring.Rings;
        var survivors = new[] { ring.Endpoints[0], ring.Endpoints[1] };
        var members = survivors.Select(e => e.LocalEndPoint).ToList();

        Ring[] next = await Task.WhenAll(survivors.Select(e => e.JoinAsync(members, 2, LoopbackRing.JoinTimeout, CancellationToken.None)));

        Assert.True(old[0].IsBroken);
        Assert.True(old[1].IsBroken);
        // The member left behind in generation 1 finds its ring broken instead of summing with generation 2.
        await Assert.ThrowsAsync<RingBrokenException>(() => old[2].AllReduceSumAsync(new float[] { 100, 100 }, CancellationToken.None).WaitAsync(Quickly));
        float[][] data = [[1, 2], [3, 4]];
        await Task.WhenAll(next.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));
        Assert.All(data, d => Assert.Equal(new float[] { 4, 6 }, d));
        Assert.All(next, r => Assert.Equal(2, r.Generation));
        // And it cannot come back to generation 1 either.
        await Assert.ThrowsAsync<InvalidOperationException>(() => ring.Endpoints[2].JoinAsync(ring.Members, 1, LoopbackRing.JoinTimeout, CancellationToken.None));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task AMemberAheadByAGenerationWaitsForTheOtherWithoutMixing()
    {
        await using var ring = await LoopbackRing.StartAsync(2, generation: 1);
        var members = ring.Members;
        // Member 0 moves on to generation 2 first; its connection waits at member 1, which is still in generation 1.
        Task<Ring> ahead = ring.Endpoints[0].JoinAsync(members, 2, LoopbackRing.JoinTimeout, CancellationToken.None);
        await Task.Delay(200);
        Assert.False(ahead.IsCompleted);
        await Assert.ThrowsAsync<RingBrokenException>(() => ring.Rings[1].AllReduceSumAsync(new float[] { 7 }, CancellationToken.None).WaitAsync(Quickly));

        Ring behind = await ring.Endpoints[1].JoinAsync(members, 2, LoopbackRing.JoinTimeout, CancellationToken.None);
        Ring first = await ahead.WaitAsync(Quickly);
        float[] a = [1], b = [2];
        await Task.WhenAll(first.AllReduceSumAsync(a, CancellationToken.None), behind.AllReduceSumAsync(b, CancellationToken.None));
        Assert.Equal(3f, a[0]);
        Assert.Equal(3f, b[0]);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task MembersWithDifferentMemberListsNeverFormARing()
    {
        RingEndpoint[] endpoints = await LoopbackRing.ListenAsync(3);
        try
        {
            var three = endpoints.Select(e => e.LocalEndPoint).ToList();
            var two = three.Take(2).ToList();
            // Member 1 thinks member 2 exists; members 0 and 2 use other lists, all for generation 1.
            Task<Ring>[] joins =
            [
                endpoints[0].JoinAsync(two, 1, TimeSpan.FromSeconds(3), CancellationToken.None),
                endpoints[1].JoinAsync(three, 1, TimeSpan.FromSeconds(3), CancellationToken.None),
                endpoints[2].JoinAsync([three[2], three[0]], 1, TimeSpan.FromSeconds(3), CancellationToken.None),
            ];
            foreach (Task<Ring> join in joins) await Assert.ThrowsAsync<RingBrokenException>(() => join.WaitAsync(Quickly));
        }
        finally
        {
            foreach (RingEndpoint e in endpoints) await e.DisposeAsync();
        }
    }
}
