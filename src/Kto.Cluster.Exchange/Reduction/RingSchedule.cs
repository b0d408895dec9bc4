namespace Kto.Cluster.Exchange.Reduction;

/// <summary>One frame of an all-reduce: which elements it carries at which step.</summary>
/// <param name="Step">Ring step: 0 … N−2 reduce-scatter, N−1 … 2N−3 all-gather.</param>
/// <param name="Segment">Segment of the buffer (0 … N−1) the elements belong to.</param>
/// <param name="Offset">First element.</param>
/// <param name="Count">Elements in the frame (at least one).</param>
/// <param name="Add">On the receiving side: add into the local values (reduce-scatter) or overwrite them (all-gather).</param>
internal readonly record struct Transfer(int Step, int Segment, long Offset, int Count, bool Add);

/// <summary>
/// The frames one member sends and receives in a ring all-reduce of <c>length</c> elements among <c>size</c>
/// members. The buffer is cut into <c>size</c> contiguous segments (sizes differ by at most one element); each
/// segment is sent in frames of at most <c>elementsPerChunk</c> elements.
/// <para>
/// At step s the member of rank r sends segment (r − s) mod N and receives segment (r − s − 1) mod N, for
/// s = 0 … 2N − 3. During the first N − 1 steps (reduce-scatter) it adds what it receives into its own values,
/// so segment k is summed along the ring starting at rank k: ((x_k + x_{k+1}) + x_{k+2}) + … + x_{k−1}. After
/// them rank r holds the finished sum of segment r + 1, which the last N − 1 steps (all-gather) pass around
/// unchanged. What a member sends at step s ≥ 1 is exactly what it received at step s − 1, frame by frame, so a
/// frame can be forwarded as soon as it has arrived (and been added).
/// </para>
/// </summary>
internal sealed class RingSchedule
{
    private RingSchedule(Transfer[] sends, Transfer[] receives, int lastStep)
    {
        Sends = sends;
        Receives = receives;
        LastStep = lastStep;
    }

    /// <summary>Frames to send, in order.</summary>
    public Transfer[] Sends { get; }

    /// <summary>Frames to receive, in order.</summary>
    public Transfer[] Receives { get; }

    /// <summary>The last step (2N − 3); what is received at it is never forwarded.</summary>
    public int LastStep { get; }

    /// <summary>First element of segment <paramref name="segment"/> of <paramref name="size"/>.</summary>
    public static long SegmentStart(long length, int size, int segment) => length * segment / size;

    /// <summary>The schedule of rank <paramref name="rank"/>.</summary>
    public static RingSchedule Create(int rank, int size, long length, int elementsPerChunk)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(elementsPerChunk, 1);
        int steps = 2 * (size - 1);
        var sends = new List<Transfer>();
        var receives = new List<Transfer>();
        for (int step = 0; step < steps; step++)
        {
            bool add = step < size - 1;
            AddFrames(sends, step, Mod(rank - step, size), add, length, size, elementsPerChunk);
            AddFrames(receives, step, Mod(rank - step - 1, size), add, length, size, elementsPerChunk);
        }
        return new RingSchedule(sends.ToArray(), receives.ToArray(), steps - 1);
    }

    private static void AddFrames(List<Transfer> into, int step, int segment, bool add, long length, int size, int elementsPerChunk)
    {
        long start = SegmentStart(length, size, segment);
        long end = SegmentStart(length, size, segment + 1);
        for (long offset = start; offset < end; offset += elementsPerChunk)
            into.Add(new Transfer(step, segment, offset, (int)Math.Min(elementsPerChunk, end - offset), add));
    }

    private static int Mod(int value, int size) => ((value % size) + size) % size;
}
