using System.Diagnostics;
using System.Globalization;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// A small tmpfs mounted on a directory, to fill up and free again: a real full filesystem under the journal or
/// output_dir (ENOSPC from the kernel, as on a full disk). Needs root or password-less sudo (mount);
/// <see cref="TmpfsFactAttribute"/> skips visibly without them.
/// </summary>
public sealed class SmallDisk : IDisposable
{
    private SmallDisk(string path) => Path = path;

    /// <summary>The mount point.</summary>
    public string Path { get; }

    private string Filler => System.IO.Path.Combine(Path, ".filler");

    /// <summary>Mounts a tmpfs of <paramref name="megabytes"/> MB on <paramref name="path"/> (created if needed).</summary>
    public static SmallDisk Mount(string path, int megabytes)
    {
        Directory.CreateDirectory(path);
        Run("mount", "-t", "tmpfs", "-o", $"size={megabytes.ToString(CultureInfo.InvariantCulture)}m,mode=1777", "tmpfs", path);
        return new SmallDisk(path);
    }

    /// <summary>Writes a filler file until the filesystem is full.</summary>
    public void Fill()
    {
        var block = new byte[64 * 1024];
        using var f = new FileStream(Filler, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        try
        {
            while (true) f.Write(block);
        }
        catch (IOException)
        {
            // full
        }
        // what is left below one block
        try
        {
            while (true) f.Write(block, 0, 512);
        }
        catch (IOException)
        {
            // full to the last sector
        }
    }

    /// <summary>Deletes the filler.</summary>
    public void Free() => File.Delete(Filler);

    /// <summary>Unmounts (lazily, so files processes still hold do not keep it busy).</summary>
    public void Dispose()
    {
        try
        {
            Run("umount", "-l", Path);
        }
        catch (InvalidOperationException)
        {
            // already unmounted
        }
    }

    /// <summary>Why tmpfs cannot be mounted here, or null if it can.</summary>
    public static string? Unavailable()
    {
        string probe = Directory.CreateTempSubdirectory("kto-tmpfs-probe-").FullName;
        try
        {
            using (Mount(probe, 1))
            {
            }
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return $"cannot mount a tmpfs here ({e.Message}); full-disk cases need root or password-less sudo";
        }
        finally
        {
            try
            {
                Directory.Delete(probe);
            }
            catch (IOException)
            {
                // still a mount point for a moment
            }
        }
    }

    /// <summary>Runs a mount command: directly as root, else through <c>sudo -n</c> (never prompting).</summary>
    private static void Run(string file, params string[] args)
    {
        bool root = Environment.UserName == "root";
        var psi = new ProcessStartInfo(root ? file : "sudo") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (!root)
        {
            psi.ArgumentList.Add("-n");
            psi.ArgumentList.Add(file);
        }
        foreach (string a in args) psi.ArgumentList.Add(a);
        using Process p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit {p.ExitCode}: {err.Trim()}");
    }
}

/// <summary>A fact that needs to mount a tmpfs (root); skipped visibly, with the reason, where it cannot.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Reason = new(SmallDisk.Unavailable);

    /// <summary>Sets Skip when tmpfs cannot be mounted.</summary>
    public TmpfsFactAttribute()
    {
        if (Reason.Value is { } why) Skip = why;
    }
}
