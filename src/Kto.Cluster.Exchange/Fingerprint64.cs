using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Kto.Cluster.Exchange;

/// <summary>
/// A fast 64-bit non-cryptographic hash of raw bytes (an xxHash64-style single-lane mix: multiply, rotate,
/// final avalanche). It only has to tell replicas' buffers apart, not resist an adversary. The value depends on
/// the bytes alone (words are read little-endian on every machine).
/// </summary>
internal static class Fingerprint64
{
    /// <summary>Odd 64-bit multiplier from xxHash64 (a prime with well-spread bits).</summary>
    private const ulong Prime1 = 0x9E3779B185EBCA87UL;

    /// <summary>Second xxHash64 multiplier.</summary>
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;

    /// <summary>Third xxHash64 multiplier, used in the avalanche.</summary>
    private const ulong Prime3 = 0x165667B19E3779F9UL;

    /// <summary>Fourth xxHash64 constant, added after each word.</summary>
    private const ulong Prime4 = 0x85EBCA77C2B2AE63UL;

    /// <summary>Fifth xxHash64 constant: the seed and the multiplier of tail bytes.</summary>
    private const ulong Prime5 = 0x27D4EB2F165667C5UL;

    /// <summary>The hash of <paramref name="data"/>.</summary>
    public static ulong Of(ReadOnlySpan<byte> data)
    {
        ulong h = Prime5 + (ulong)data.Length;
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong raw in words)
        {
            ulong w = BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
            h ^= BitOperations.RotateLeft(w * Prime2, 31) * Prime1;
            h = BitOperations.RotateLeft(h, 27) * Prime1 + Prime4;
        }
        foreach (byte b in data[(words.Length * sizeof(ulong))..])
        {
            h ^= b * Prime5;
            h = BitOperations.RotateLeft(h, 11) * Prime1;
        }
        h ^= h >> 33;
        h *= Prime2;
        h ^= h >> 29;
        h *= Prime3;
        h ^= h >> 32;
        return h;
    }
}
