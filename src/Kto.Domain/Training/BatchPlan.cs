namespace Kto.Domain.Training;

/// <summary>
/// Which examples each optimizer step trains on: a pure function of (dataset size, seed, shuffle, batch size,
/// accumulation), so a resumed or distributed run replays exactly the same batches.
/// </summary>
/// <remarks>
/// Epoch e visits the examples in a seeded permutation (or dataset order when shuffling is off), cut into
/// micro-batches of <c>batchSize</c> (the last may be smaller). An optimizer step takes up to
/// <c>accumulation</c> consecutive micro-batches and never crosses an epoch boundary.
/// </remarks>
public sealed class BatchPlan
{
    private readonly int _count;
    private readonly int _seed;
    private readonly bool _shuffle;

    /// <summary>The plan a run config gives over <paramref name="exampleCount"/> examples (data seed, shuffle, batch size, accumulation).</summary>
    public static BatchPlan For(Options.KtoConfig config, int exampleCount) =>
        new(exampleCount, config.EffectiveDataSeed, config.Shuffle, config.PerDeviceTrainBatchSize, config.GradientAccumulationSteps);

    /// <summary>Creates the plan.</summary>
    public BatchPlan(int count, int seed, bool shuffle, int batchSize, int accumulation)
    {
        if (count < 1) throw new ArgumentException("the plan needs at least one example", nameof(count));
        _count = count;
        _seed = seed;
        _shuffle = shuffle;
        BatchSize = batchSize;
        Accumulation = accumulation;
        MicroBatchesPerEpoch = (count + batchSize - 1) / batchSize;
        StepsPerEpoch = (MicroBatchesPerEpoch + accumulation - 1) / accumulation;
    }

    /// <summary>Examples per micro-batch.</summary>
    public int BatchSize { get; }
    /// <summary>Micro-batches per optimizer step.</summary>
    public int Accumulation { get; }
    /// <summary>Micro-batches in one pass over the data.</summary>
    public int MicroBatchesPerEpoch { get; }
    /// <summary>Optimizer steps in one pass over the data.</summary>
    public int StepsPerEpoch { get; }

    /// <summary>Total optimizer steps: max_steps if positive, else ⌈epochs · steps per epoch⌉.</summary>
    public int TotalSteps(double epochs, int maxSteps) => maxSteps > 0 ? maxSteps : Math.Max(1, (int)Math.Ceiling(epochs * StepsPerEpoch));

    /// <summary>The epoch (0-based) that optimizer step <paramref name="step"/> belongs to.</summary>
    public int EpochOf(int step) => step / StepsPerEpoch;

    /// <summary>The micro-batches (lists of dataset indices) of optimizer step <paramref name="step"/> (0-based).</summary>
    public IReadOnlyList<int[]> Step(int step)
    {
        int epoch = EpochOf(step);
        int[] order = EpochOrder(epoch);
        int first = (step % StepsPerEpoch) * Accumulation;
        var micro = new List<int[]>(Accumulation);
        for (int mb = first; mb < Math.Min(first + Accumulation, MicroBatchesPerEpoch); mb++)
        {
            int start = mb * BatchSize;
            micro.Add(order[start..Math.Min(start + BatchSize, _count)]);
        }
        return micro;
    }

    /// <summary>The visiting order of epoch <paramref name="epoch"/>.</summary>
    public int[] EpochOrder(int epoch)
    {
        int[] order = Enumerable.Range(0, _count).ToArray();
        if (!_shuffle) return order;
        var rng = new SplitMix64(unchecked(((ulong)(uint)_seed << 32) ^ (ulong)(uint)epoch ^ 0x4B544F5F504C414EUL));
        for (int i = _count - 1; i > 0; i--)   // Fisher–Yates
        {
            int j = (int)rng.NextBelow((ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}

/// <summary>SplitMix64: a tiny, portable PRNG whose output is fixed by its seed on every platform and runtime.</summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, bound), without modulo bias.</summary>
    public ulong NextBelow(ulong bound)
    {
        ulong limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong x;
        do x = Next(); while (x >= limit);
        return x % bound;
    }
}
