using System.Globalization;

namespace Kto.Bench;

/// <summary>The kernel's peak resident size of this process (Linux: VmHWM, reset by writing "5" to /proc/self/clear_refs).</summary>
public static class PeakMemory
{
    /// <summary>How far the peak resident size rises above the size before <paramref name="work"/> while it runs, in bytes.</summary>
    /// <exception cref="PlatformNotSupportedException">The peak cannot be reset here.</exception>
    public static long Of(Action work)
    {
        Reset();
        long before = Status("VmRSS:");
        work();
        return Status("VmHWM:") - before;
    }

    /// <summary>Resets the peak resident size to the current size.</summary>
    public static void Reset()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlatformNotSupportedException($"cannot reset the peak resident size (/proc/self/clear_refs): {e.Message}", e);
        }
    }

    /// <summary>A size line of /proc/self/status, in bytes.</summary>
    public static long Status(string key)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
