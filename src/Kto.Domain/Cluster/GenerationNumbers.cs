namespace Kto.Domain.Cluster;

/// <summary>
/// Step-attempt numbers: the coordinator's incarnation in the high 32 bits and a counter within it in the low 32,
/// so generations grow across coordinator restarts without persisting every bump.
/// </summary>
public static class GenerationNumbers
{
    /// <summary>The first generation of an incarnation.</summary>
    public static long First(int incarnation) => (long)incarnation << 32;

    /// <summary>The generation after <paramref name="generation"/>.</summary>
    public static long Next(long generation) => generation + 1;

    /// <summary>The incarnation a generation belongs to.</summary>
    public static int IncarnationOf(long generation) => (int)(generation >> 32);
}
