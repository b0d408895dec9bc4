using System.Runtime.InteropServices;
using Kto.Cluster.Exchange.Reduction;

namespace Kto.Cluster.Exchange.Tests;

public sealed class AllReduceTests
{
    private const int TestTimeoutMs = 60_000;

    private static readonly RingOptions SmallChunks = new() { MaxChunkBytes = 4096 };

    [Theory(Timeout = TestTimeoutMs)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task AllReduceIsTheElementWiseSumAndBitIdenticalOnEveryMember(int n)
    {
        const int length = 10_007; // not divisible by 2, 3 or 4; several 1024-float chunks per segment
        await using var ring = await LoopbackRing.StartAsync(n, SmallChunks);
        float[][] inputs = Enumerable.Range(0, n).Select(r => LoopbackRing.Data(r, length)).ToArray();
        float[][] data = inputs.Select(d => (float[])d.Clone()).ToArray();

        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));

        for (int i = 0; i < length; i++)
        {
            float reference = 0;
            for (int r = 0; r < n; r++) reference += inputs[r][i];
            Assert.True(Math.Abs(data[0][i] - reference) <= 1e-5f, $"element {i}: {data[0][i]} vs {reference}");
        }
        for (int r = 1; r < n; r++)
            Assert.True(MemoryMarshal.AsBytes(data[r].AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(data[0].AsSpan())), $"rank {r} differs from rank 0");
        Assert.All(ring.Rings, r => Assert.Equal(n, r.Size));
        Assert.Equal(Enumerable.Range(0, n), ring.Rings.Select(r => r.Rank));
    }

    [Theory(Timeout = TestTimeoutMs)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task EachElementIsSummedOnceInRingOrderFromItsSegmentsOwner(int n)
    {
        const int length = 1001;
        await using var ring = await LoopbackRing.StartAsync(n, SmallChunks);
        float[][] inputs = Enumerable.Range(0, n).Select(r => LoopbackRing.Data(r, length, seed: 11)).ToArray();
        float[][] data = inputs.Select(d => (float[])d.Clone()).ToArray();

        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));

        for (int segment = 0; segment < n; segment++)
        {
            long start = RingSchedule.SegmentStart(length, n, segment), end = RingSchedule.SegmentStart(length, n, segment + 1);
            for (long i = start; i < end; i++)
            {
                float sum = inputs[segment][i];
                for (int k = 1; k < n; k++) sum += inputs[(segment + k) % n][i];
                Assert.Equal(BitConverter.SingleToInt32Bits(sum), BitConverter.SingleToInt32Bits(data[0][i]));
            }
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task ABufferFarLargerThanAChunkWithALengthNotDivisibleByTheMembersIsReducedExactly()
    {
        const int n = 3, length = 1_000_003; // ≈ 4 MB, 16 KiB chunks: ≈ 80 frames per segment and step
        await using var ring = await LoopbackRing.StartAsync(n, new RingOptions { MaxChunkBytes = 16 << 10 });
        // Small integers: every order of summation gives the same exact float.
        float[][] data = Enumerable.Range(0, n).Select(r => Enumerable.Range(0, length).Select(i => (float)((i * (r + 1)) % 1000)).ToArray()).ToArray();

        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));

        for (int i = 0; i < length; i++)
        {
            float expected = (i % 1000) + ((i * 2) % 1000) + ((i * 3) % 1000);
            for (int r = 0; r < n; r++)
                if (data[r][i] != expected) Assert.Fail($"rank {r} element {i}: {data[r][i]} instead of {expected}");
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task DoublesWithFewerElementsThanMembersAndEmptyBuffersWork()
    {
        const int n = 4;
        await using var ring = await LoopbackRing.StartAsync(n);
        double[][] kl = Enumerable.Range(0, n).Select(r => new[] { 0.25 * (r + 1), r + 1.0 }).ToArray();
        double[][] empty = Enumerable.Range(0, n).Select(_ => Array.Empty<double>()).ToArray();
        double[][] five = Enumerable.Range(0, n).Select(r => Enumerable.Range(0, 5).Select(i => (double)(i + 10 * r)).ToArray()).ToArray();

        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(kl[i], CancellationToken.None)));
        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(empty[i], CancellationToken.None)));
        await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(five[i], CancellationToken.None)));

        Assert.All(kl, d => Assert.Equal(new[] { 2.5, 10.0 }, d));
        Assert.All(five, d => Assert.Equal(Enumerable.Range(0, 5).Select(i => 4.0 * i + 60), d));
        Assert.All(ring.Rings, r => Assert.Equal(3, r.Steps));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task SuccessiveAllReducesOnOneRingStayInStep()
    {
        const int n = 2;
        await using var ring = await LoopbackRing.StartAsync(n, SmallChunks);
        for (int round = 0; round < 5; round++)
        {
            float[][] inputs = Enumerable.Range(0, n).Select(r => LoopbackRing.Data(r, 3000 + round, seed: round)).ToArray();
            float[][] data = inputs.Select(d => (float[])d.Clone()).ToArray();
            await Task.WhenAll(ring.Rings.Select((r, i) => r.AllReduceSumAsync(data[i], CancellationToken.None)));
            for (int i = 0; i < data[0].Length; i++) Assert.Equal(inputs[0][i] + inputs[1][i], data[1][i]);
            Assert.True(data[0].AsSpan().SequenceEqual(data[1]));
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task MembersThatDisagreeOnTheLengthBreakTheRingInsteadOfMixingNumbers()
    {
        await using var ring = await LoopbackRing.StartAsync(2);
        Task a = ring.Rings[0].AllReduceSumAsync(new float[100], CancellationToken.None);
        Task b = ring.Rings[1].AllReduceSumAsync(new float[101], CancellationToken.None);
        await Assert.ThrowsAsync<RingBrokenException>(() => a.WaitAsync(TimeSpan.FromSeconds(20)));
        await Assert.ThrowsAsync<RingBrokenException>(() => b.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.All(ring.Rings, r => Assert.True(r.IsBroken));
        await Assert.ThrowsAsync<RingBrokenException>(() => ring.Rings[0].AllReduceSumAsync(new float[100], CancellationToken.None));
    }
}
