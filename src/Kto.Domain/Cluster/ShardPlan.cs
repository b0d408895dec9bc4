namespace Kto.Domain.Cluster;

/// <summary>
/// Splits one global micro-batch among a step's members: contiguous slices, sizes differing by at most one, the
/// larger slices first. Members beyond the batch size get an empty shard (they still take part in the reductions).
/// The split never changes which examples form the batch, only who computes them. With shares (the coordinator's
/// balance of members of unequal speed, <see cref="ShardBalance"/>), each member's size follows its share instead.
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

    /// <summary>The indices member <paramref name="rank"/> computes when the members' sizes follow <paramref name="shares"/>
    /// (one positive weight per member; null: equal, as <see cref="Shard(IReadOnlyList{int}, int, int)"/>).</summary>
    public static int[] Shard(IReadOnlyList<int> microBatch, IReadOnlyList<int>? shares, int members, int rank)
    {
        if (shares is null) return Shard(microBatch, members, rank);
        if (shares.Count != members) throw new ArgumentException($"{shares.Count} shares for {members} members", nameof(shares));
        int[] counts = Apportion(microBatch.Count, shares);
        int start = counts.Take(rank).Sum();
        return [.. Enumerable.Range(start, counts[rank]).Select(i => microBatch[i])];
    }

    /// <summary>
    /// Cuts <paramref name="total"/> items into whole counts in proportion to <paramref name="shares"/> by largest
    /// remainders (Hamilton's method), ties to the lower rank — so equal shares give the equal split, the larger
    /// parts first.
    /// </summary>
    /// <exception cref="ArgumentException">No shares, or one not positive.</exception>
    public static int[] Apportion(int total, IReadOnlyList<int> shares)
    {
        if (shares.Count == 0 || shares.Any(s => s <= 0)) throw new ArgumentException($"shares must be positive, got [{string.Join(", ", shares)}]", nameof(shares));
        long sum = shares.Sum(s => (long)s);
        var counts = new int[shares.Count];
        var remainders = new long[shares.Count];
        for (int r = 0; r < shares.Count; r++)
        {
            long exact = (long)total * shares[r]; // counts[r] = floor(exact / sum), remainder in units of 1/sum
            counts[r] = (int)(exact / sum);
            remainders[r] = exact % sum;
        }
        int left = total - counts.Sum();
        foreach (int r in Enumerable.Range(0, shares.Count).OrderByDescending(r => remainders[r]).ThenBy(r => r).Take(left)) counts[r]++;
        return counts;
    }
}
