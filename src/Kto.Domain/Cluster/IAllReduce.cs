namespace Kto.Domain.Cluster;

/// <summary>
/// Element-wise sum across the members of one step, in place. Every member calls it with buffers of equal length and
/// gets bit-identical results (the sum of each element is formed once, in a fixed order, and copied).
/// </summary>
public interface IAllReduce
{
    /// <summary>This member's position in the step's membership.</summary>
    int Rank { get; }

    /// <summary>Members taking part.</summary>
    int Size { get; }

    /// <summary>Sums <paramref name="data"/> across members.</summary>
    void SumInPlace(float[] data);

    /// <summary>Sums <paramref name="data"/> across members (small vectors: KL sums and counts, metric sums).</summary>
    void SumInPlace(double[] data);

    /// <summary>
    /// Starts summing <paramref name="data"/> across members and returns what waits for the sum (<paramref name="data"/>
    /// holds it once that returns), so a member can compute while the others catch up. The wait must be called before
    /// the next sum starts. By default the sum is formed at once, as <see cref="SumInPlace(double[])"/>.
    /// </summary>
    Action BeginSum(double[] data)
    {
        SumInPlace(data);
        return static () => { };
    }

    /// <summary>Bytes this member has put on the wire so far (0 where nothing travels, e.g. in memory).</summary>
    long BytesSent => 0;
}

/// <summary>A group of one (<c>kto train</c> under full_determinism runs the replica's step alone): sums are the values.</summary>
public sealed class SoloGroup : IAllReduce
{
    /// <summary>The group.</summary>
    public static SoloGroup Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int Size => 1;

    /// <inheritdoc />
    public void SumInPlace(float[] data) { }

    /// <inheritdoc />
    public void SumInPlace(double[] data) { }
}
