namespace Kto.Domain.Cluster;

/// <summary>
/// Splits one global micro-batch among a step's members: contiguous slices, sizes differing by at most one, the
/// larger slices first. Members beyond the batch size get an empty shard (they still take part in the reductions).
/// The split never changes which examples form the batch, only who computes them.
/// </summary>
public static class ShardPlan
{
    /// <summary>The indices member <paramref name="rank"/> of <paramref name="members"/> computes.</summary>
    public static int[] Shard(IReadOnlyList<int> microBatch, int members, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(members, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, members);
        int n = microBatch.Count, size = n / members, extra = n % members;
        int start = rank * size + Math.Min(rank, extra);
        int length = size + (rank < extra ? 1 : 0);
        var shard = new int[length];
        for (int i = 0; i < length; i++) shard[i] = microBatch[start + i];
        return shard;
    }
}
