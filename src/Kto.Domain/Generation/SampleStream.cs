using Kto.Domain.Training;

namespace Kto.Domain.Generation;

/// <summary>
/// The random stream of one (seed, prompt, sample) triple: a <see cref="SplitMix64"/> whose start is a hash of the
/// three numbers, so a completion's draws never depend on which other sequences share its batch.
/// </summary>
internal static class SampleStream
{
    /// <summary>Separates the sampler's streams from other users of the same seed.</summary>
    private const ulong Domain = 0x4B544F5F53414D50UL; // "KTO_SAMP"

    /// <summary>53 random bits scaled into [0, 1).</summary>
    private const double UnitScale = 1.0 / (1UL << 53);

    /// <summary>The stream for sample <paramref name="sampleIndex"/> of prompt <paramref name="promptIndex"/>.</summary>
    public static SplitMix64 For(long seed, int promptIndex, int sampleIndex)
    {
        ulong h = Mix((ulong)seed ^ Domain);
        h = Mix(h ^ (uint)promptIndex);
        h = Mix(h ^ ((ulong)(uint)sampleIndex << 32));
        return new SplitMix64(h);
    }

    /// <summary>A uniform double in [0, 1) from the next 53 bits of <paramref name="rng"/>.</summary>
    public static double NextUnit(ref SplitMix64 rng) => (rng.Next() >> 11) * UnitScale;

    private static ulong Mix(ulong x) => new SplitMix64(x).Next();
}
