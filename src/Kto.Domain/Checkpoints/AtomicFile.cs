using System.Security.Cryptography;

namespace Kto.Domain.Checkpoints;

/// <summary>Crash-safe file and directory writes: temp, fsync, rename.</summary>
public static class AtomicFile
{
    /// <summary>Writes a file via a temp file in the same directory, flushed to disk, then renamed over the target.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string temp = path + ".tmp-" + Environment.ProcessId;
        using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            write(fs);
            fs.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Writes text atomically.</summary>
    public static void WriteText(string path, string text)
        => Write(path, s => { using var w = new StreamWriter(s, leaveOpen: true); w.Write(text); });

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    /// <summary>SHA-256 of a text's UTF-8 bytes, lower-case hex.</summary>
    public static string Sha256Text(string text) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
}
