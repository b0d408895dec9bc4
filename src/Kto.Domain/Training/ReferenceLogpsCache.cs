using System.Buffers.Binary;
using System.Text;
using Kto.Domain.Checkpoints;

namespace Kto.Domain.Training;

/// <summary>
/// Precomputed reference log-probs on disk (<c>precompute_ref_log_probs</c>): one pair of doubles per example,
/// in a file named by the dataset fingerprint and the reference weights' hash, so a rerun or a resume reuses it
/// and a changed dataset, tokenizer, truncation or reference never picks up stale values.
/// </summary>
public static class ReferenceLogpsCache
{
    private const string Magic = "KTOREF01";

    /// <summary>The cache file for this dataset and reference inside <paramref name="dir"/>.</summary>
    public static string PathFor(string dir, string datasetFingerprint, string referenceHash)
        => System.IO.Path.Combine(dir, $"ref_logps-{datasetFingerprint[..16]}-{referenceHash[..16]}.bin");

    /// <summary>Reads a cache file; null when it is absent or was written for something else.</summary>
    public static ReferenceLogps[]? TryRead(string path, string datasetFingerprint, string referenceHash, int count)
    {
        if (!File.Exists(path)) return null;
        byte[] all = File.ReadAllBytes(path);
        string header = $"{Magic}{datasetFingerprint}{referenceHash}";
        int headerLen = Encoding.ASCII.GetByteCount(header);
        if (all.Length != headerLen + 4 + count * 16 || Encoding.ASCII.GetString(all, 0, headerLen) != header
            || BinaryPrimitives.ReadInt32LittleEndian(all.AsSpan(headerLen)) != count)
            return null;
        var result = new ReferenceLogps[count];
        for (int i = 0; i < count; i++)
        {
            int o = headerLen + 4 + i * 16;
            result[i] = new ReferenceLogps(
                BinaryPrimitives.ReadDoubleLittleEndian(all.AsSpan(o)),
                BinaryPrimitives.ReadDoubleLittleEndian(all.AsSpan(o + 8)));
        }
        return result;
    }

    /// <summary>Writes a cache file atomically.</summary>
    public static void Write(string path, string datasetFingerprint, string referenceHash, ReferenceLogps[] values)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        AtomicFile.Write(path, s =>
        {
            s.Write(Encoding.ASCII.GetBytes($"{Magic}{datasetFingerprint}{referenceHash}"));
            Span<byte> buf = stackalloc byte[16];
            BinaryPrimitives.WriteInt32LittleEndian(buf, values.Length);
            s.Write(buf[..4]);
            foreach (ReferenceLogps v in values)
            {
                BinaryPrimitives.WriteDoubleLittleEndian(buf, v.Completion);
                BinaryPrimitives.WriteDoubleLittleEndian(buf[8..], v.Kl);
                s.Write(buf);
            }
        });
    }
}
