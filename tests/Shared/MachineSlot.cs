namespace Kto.Cluster.Testing;

/// <summary>
/// The machine-wide slots that tests running clusters, benchmarks or other multi-process work take, so that at most
/// <see cref="Slots"/> of them run at once across every test assembly. xunit runs test classes in parallel and
/// <c>dotnet test</c> runs the test assemblies in parallel; on a 2-core machine four clusters at once starved each
/// other's failure detectors, step time-outs and hang guards, and a test then failed for its neighbours' load. Tests
/// whose subject is timing (the network rig's shaped links and partitions, benchmarks) take every slot
/// (<see cref="TakeAll"/>) and run alone. A slot is an exclusive lock on a file in the temp directory (.NET takes
/// <c>FileShare.None</c> as flock on Unix), so the kernel frees it if a test host dies. Not reentrant: take slots once
/// per test (a test class's field), never again inside.
/// </summary>
public sealed class MachineSlot : IDisposable
{
    /// <summary>How many multi-process tests may run at once.</summary>
    public const int Slots = 2;

    private readonly List<FileStream> _held;

    private MachineSlot(List<FileStream> held) => _held = held;

    private static string PathOf(int slot) => Path.Combine(Path.GetTempPath(), $"kto-tests-machine-slot-{slot}.lock");

    private static FileStream? TryLock(int slot)
    {
        try
        {
            return new FileStream(PathOf(slot), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Waits (polling every 200 ms, for as long as it takes) for any free slot, and takes it.</summary>
    public static MachineSlot Take()
    {
        while (true)
        {
            for (int slot = 0; slot < Slots; slot++)
                if (TryLock(slot) is { } held) return new MachineSlot([held]);
            Thread.Sleep(200);
        }
    }

    /// <summary>
    /// Takes every slot, in order (so two such takers cannot hold one slot each and wait for each other), waiting as
    /// long as it takes: the test then runs with no other multi-process test beside it.
    /// </summary>
    public static MachineSlot TakeAll()
    {
        var held = new List<FileStream>();
        for (int slot = 0; slot < Slots; slot++)
        {
            FileStream? s;
            while ((s = TryLock(slot)) is null) Thread.Sleep(200);
            held.Add(s);
        }
        return new MachineSlot(held);
    }

    public void Dispose()
    {
        foreach (FileStream s in _held) s.Dispose();
    }
}
