using System.Runtime.InteropServices;

namespace Kto.Domain.Devices;

/// <summary>
/// Keeps the memory that CPU tensors free inside the process, so the next step reuses it instead of asking the kernel
/// for fresh pages. libtorch's CPU allocator is glibc's malloc: by default glibc gives a freed block of more than
/// 128 KiB back to the kernel (<c>munmap</c>, or trimming the top of a heap), adapting the threshold only partly, so every
/// step's activations and gradients were faulted in and zeroed by the kernel again. Measured with <c>kto bench cluster</c>
/// (GPT-2 4×256, batch 16, 2 trainers on 2 cores): 3 000–6 000 page faults per second in each trainer, 5–9 % of its CPU
/// in the kernel; with the thresholds below, about none, and the 2-trainer step 0.447 and 0.489 s → 0.392 and 0.438 s.
/// </summary>
/// <remarks>
/// glibc only (Linux); elsewhere, or where <c>mallopt</c> is missing (musl), nothing is changed. Anyone who set glibc's
/// malloc tunables (<c>GLIBC_TUNABLES</c> with a <c>glibc.malloc.</c> entry, or a <c>MALLOC_…_</c> variable) keeps
/// them: the process then leaves malloc alone, as it does with <c>KTO_NATIVE_HEAP=default</c>. The cost is that a process keeps its peak native memory once reached
/// (a training step reaches it again every step). Blocks larger than a thread's heap (64 MiB for threads other than the
/// main one, glibc's HEAP_MAX_SIZE) are still mapped and unmapped each time. Option numbers and semantics: glibc's
/// <c>malloc.h</c> and mallopt(3).
/// </remarks>
public static class NativeHeap
{
    private const int MTrimThreshold = -1; // M_TRIM_THRESHOLD, malloc.h
    private const int MMmapThreshold = -3; // M_MMAP_THRESHOLD, malloc.h

    /// <summary>Bytes freed at the top of a heap that stay with the process, and the size from which a block gets its
    /// own mapping: 1 GiB each (glibc's defaults: 128 KiB, raised by glibc up to 32 MiB as large blocks are freed).</summary>
    public const long KeptBytes = 1L << 30;

    /// <summary>The environment variable that, set to <c>default</c>, leaves glibc's malloc as it is.</summary>
    public const string OptOutVariable = "KTO_NATIVE_HEAP";

    /// <summary>What <see cref="KeepFreedMemory"/> did, for a host's start-up log.</summary>
    public static string? Outcome { get; private set; }

    /// <summary>
    /// Sets glibc's trim and mmap thresholds to <see cref="KeptBytes"/> (once per process; call before the first
    /// tensor). Returns a line saying what was done, or why not (outside Linux or without glibc it changes nothing and
    /// does not throw).
    /// </summary>
    public static string KeepFreedMemory()
    {
        if (Outcome is { } done) return done;
        Outcome = Apply(Environment.GetEnvironmentVariables().Keys.Cast<string>(), Environment.GetEnvironmentVariable("GLIBC_TUNABLES"));
        return Outcome;
    }

    /// <summary>Whether the environment already tunes glibc's malloc (then it is left alone).</summary>
    /// <param name="variables">Names of the environment's variables.</param>
    /// <param name="glibcTunables">The value of <c>GLIBC_TUNABLES</c>, or null.</param>
    public static bool UserTuned(IEnumerable<string> variables, string? glibcTunables) =>
        (glibcTunables?.Contains("glibc.malloc.", StringComparison.Ordinal) ?? false)
        || variables.Any(v => v.StartsWith("MALLOC_", StringComparison.Ordinal) && v.EndsWith('_'));

    private static string Apply(IEnumerable<string> variables, string? glibcTunables)
    {
        if (!OperatingSystem.IsLinux()) return "native heap: left as it is (not Linux)";
        if (UserTuned(variables, glibcTunables)) return "native heap: left to the environment's malloc tunables";
        if (Environment.GetEnvironmentVariable(OptOutVariable) == "default") return $"native heap: glibc's default ({OptOutVariable}=default)";
        try
        {
            // Setting either turns glibc's own adjustment of both off, so both are set.
            bool mmap = Mallopt(MMmapThreshold, (int)Math.Min(KeptBytes, int.MaxValue)) == 1;
            bool trim = Mallopt(MTrimThreshold, (int)Math.Min(KeptBytes, int.MaxValue)) == 1;
            return mmap && trim
                ? $"native heap: freed memory kept for reuse (glibc trim and mmap thresholds {KeptBytes >> 20} MiB)"
                : $"native heap: glibc refused the thresholds (mmap {(mmap ? "set" : "refused")}, trim {(trim ? "set" : "refused")})";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "native heap: left as it is (not glibc)";
        }
    }

    [DllImport("libc.so.6", EntryPoint = "mallopt")] // glibc's soname; musl has none, nor mallopt
    private static extern int Mallopt(int param, int value);
}
