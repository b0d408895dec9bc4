using System.Runtime.InteropServices;
using Kto.Domain.Devices;
using Xunit;

namespace Kto.Domain.Tests.Training;

public class NativeHeapTests
{
    [Theory]
    [InlineData(null, new string[0], false)]
    [InlineData("glibc.rtld.optional_static_tls=512", new[] { "GLIBC_TUNABLES" }, false)]
    [InlineData("glibc.malloc.trim_threshold=131072", new[] { "GLIBC_TUNABLES" }, true)]
    [InlineData("glibc.rtld.nns=2:glibc.malloc.arena_max=1", new[] { "GLIBC_TUNABLES" }, true)]
    [InlineData(null, new[] { "MALLOC_ARENA_MAX" }, false)] // not glibc's spelling: its variables end in '_'
    [InlineData(null, new[] { "MALLOC_MMAP_THRESHOLD_" }, true)]
    [InlineData(null, new[] { "PATH", "MALLOC_TRIM_THRESHOLD_" }, true)]
    public void TheEnvironmentsOwnMallocTunablesWin(string? tunables, string[] variables, bool userTuned) =>
        Assert.Equal(userTuned, NativeHeap.UserTuned(variables, tunables));

    /// <summary>
    /// A 40 MiB block (above the 32 MiB up to which glibc raises its own mmap threshold, below a thread heap's 64 MiB)
    /// allocated, touched and freed three times on one thread: glibc's default maps it afresh each time (10 240 page
    /// faults per round); with the freed memory kept, rounds after the first reuse it.
    /// </summary>
    [Fact]
    public void AFreedLargeBlockIsReusedWithoutFaultingItsPagesInAgain()
    {
        string outcome = NativeHeap.KeepFreedMemory();
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(NativeHeap.OptOutVariable) == "default" || NativeHeap.UserTuned(Environment.GetEnvironmentVariables().Keys.Cast<string>(), Environment.GetEnvironmentVariable("GLIBC_TUNABLES")))
        {
            Assert.DoesNotContain("kept for reuse", outcome, StringComparison.Ordinal);
            return;
        }
        Assert.Contains("kept for reuse", outcome, StringComparison.Ordinal);
        const int bytes = 40 << 20, page = 4096;
        long[] faults = new long[3];
        var thread = new Thread(() =>
        {
            int tid = gettid();
            for (int round = 0; round < faults.Length; round++)
            {
                long before = MinorFaults(tid);
                IntPtr block = Marshal.AllocHGlobal(bytes); // malloc on Unix
                for (int i = 0; i < bytes; i += page) Marshal.WriteByte(block, i, 1);
                Marshal.FreeHGlobal(block);
                faults[round] = MinorFaults(tid) - before;
            }
        });
        thread.Start();
        thread.Join();
        Assert.True(faults[0] >= bytes / page / 2, $"the first round faults its pages in: {string.Join(", ", faults)}");
        Assert.True(faults[1] < bytes / page / 10 && faults[2] < bytes / page / 10, $"later rounds reuse them: {string.Join(", ", faults)} faults per round");
    }

    /// <summary>Minor page faults of thread <paramref name="tid"/> of this process (field 10 of /proc/self/task/TID/stat).</summary>
    private static long MinorFaults(int tid)
    {
        string stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture); // fields after the name start at 3 (state)
    }

    [DllImport("libc.so.6")]
    private static extern int gettid();
}
