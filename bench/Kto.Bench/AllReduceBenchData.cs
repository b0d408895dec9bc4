namespace Kto.Bench;

/// <summary>The inputs of the two processes: small multiples of ½ whose float sums are exact in any order.</summary>
internal static class AllReduceBenchData
{
    /// <summary>Fills <paramref name="data"/> with rank <paramref name="rank"/>'s input.</summary>
    public static void Fill(float[] data, int rank)
    {
        for (int i = 0; i < data.Length; i++) data[i] = Value(rank, i);
    }

    /// <summary>True when <paramref name="data"/> holds the sum of both ranks' inputs everywhere.</summary>
    public static bool IsSum(float[] data)
    {
        for (int i = 0; i < data.Length; i++)
            if (data[i] != Value(0, i) + Value(1, i)) return false;
        return true;
    }

    private static float Value(int rank, int i) => rank == 0 ? (i & 1023) * 0.5f : (i & 511) + 1;
}
