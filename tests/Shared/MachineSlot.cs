namespace Kto.Cluster.Testing;

/// <summary>
/// The machine-wide slot that tests running clusters, benchmarks or other multi-process work take, so that they run
/// one at a time across every test assembly. xunit runs test classes in parallel and <c>dotnet test</c> runs the test
/// assemblies in parallel; on a 2-core machine two clusters at once starve each other's failure detectors, step
/// time-outs and hang guards, and a test then fails for its neighbour's load. The slot is an exclusive lock on a file
/// in the temp directory (.NET takes <c>FileShare.None</c> as flock on Unix), so the kernel frees it if a test host
/// dies. Not reentrant: take it once per test (a test class's field), never again inside.
/// </summary>
public sealed class MachineSlot : IDisposable
{
    private static readonly string LockPath = Path.Combine(Path.GetTempPath(), "kto-tests-machine-slot.lock");
    private readonly FileStream _lock;

    private MachineSlot(FileStream held) => _lock = held;

    /// <summary>Waits (polling every 200 ms, for as long as it takes) until no other test holds the slot, and takes it.</summary>
    public static MachineSlot Take()
    {
        while (true)
        {
            try
            {
                return new MachineSlot(new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException)
            {
                Thread.Sleep(200);
            }
        }
    }

    public void Dispose() => _lock.Dispose();
}
