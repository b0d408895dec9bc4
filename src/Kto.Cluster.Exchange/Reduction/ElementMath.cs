using System.Numerics;
using System.Runtime.InteropServices;

namespace Kto.Cluster.Exchange.Reduction;

/// <summary>Element-wise addition of received partial sums into local values.</summary>
internal static class ElementMath
{
    /// <summary>
    /// <c>accumulator[i] = incoming[i] + accumulator[i]</c>. Each element is one IEEE addition whether done in a
    /// vector lane or in the scalar tail, so the result does not depend on the machine's vector width.
    /// </summary>
    public static void AddInto<T>(Span<T> accumulator, ReadOnlySpan<T> incoming)
        where T : unmanaged, IAdditionOperators<T, T, T>
    {
        if (incoming.Length != accumulator.Length) throw new ArgumentException("lengths differ", nameof(incoming));
        int i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            Span<Vector<T>> acc = MemoryMarshal.Cast<T, Vector<T>>(accumulator);
            ReadOnlySpan<Vector<T>> inc = MemoryMarshal.Cast<T, Vector<T>>(incoming);
            for (int v = 0; v < acc.Length; v++) acc[v] = inc[v] + acc[v];
            i = acc.Length * Vector<T>.Count;
        }
        for (; i < accumulator.Length; i++) accumulator[i] = incoming[i] + accumulator[i];
    }
}
