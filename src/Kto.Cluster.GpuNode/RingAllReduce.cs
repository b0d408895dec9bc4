using Kto.Cluster.Exchange;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode;

/// <summary><see cref="IAllReduce"/> over a TCP <see cref="Ring"/> (the step code is synchronous; the ring is not).</summary>
public sealed class RingAllReduce(Ring ring, CancellationToken cancel) : IAllReduce
{
    /// <inheritdoc />
    public int Rank => ring.Rank;

    /// <inheritdoc />
    public int Size => ring.Size;

    /// <inheritdoc />
    public void SumInPlace(float[] data) => ring.AllReduceSumAsync(data, cancel).GetAwaiter().GetResult();

    /// <inheritdoc />
    public void SumInPlace(double[] data) => ring.AllReduceSumAsync(data, cancel).GetAwaiter().GetResult();

    /// <inheritdoc />
    public Action BeginSum(double[] data)
    {
        Task sum = ring.AllReduceSumAsync(data, cancel);
        return () => sum.GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public long BytesSent => ring.BytesSent;
}
