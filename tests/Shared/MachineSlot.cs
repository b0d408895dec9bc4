namespace Kto.Cluster.Testing;

/// <summary>
/// The machine-wide slots that tests running clusters, benchmarks or other multi-process work take, so that at most
/// <see cref="Slots"/> of them run at once across every test assembly. xunit runs test classes in parallel and
/// <c>dotnet test</c> runs the test assemblies in parallel; on a 2-core machine four clusters at once starved each
/// other's failure detectors, step time-outs and hang guards, and a test then failed for its neighbours' load. Tests
/// whose subject is timing (the network rig's shaped links and partitions) take every slot (<see cref="TakeAll"/>)
/// and run alone; benchmark tests check their output's shape, not its figures, and take one slot. A slot is an exclusive lock on a file in the temp directory (.NET takes
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

    /// <summary>
    /// The gate a <see cref="TakeAll"/> caller holds from before its first slot until it releases its slots. <see
    /// cref="Take"/> takes no slot while the gate is held, so the slots drain for the waiting exclusive test; without
    /// it, an exclusive test holding slot 0 raced every other waiter for slot 1 and, on CI, waited 13 minutes while
    /// the machine ran one test at a time.
    /// </summary>
    private static string GatePath => Path.Combine(Path.GetTempPath(), "kto-tests-machine-slot-gate.lock");

    private static FileStream? TryLock(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static FileStream? TryLock(int slot) => TryLock(PathOf(slot));

    private static bool GateHeld()
    {
        using FileStream? gate = TryLock(GatePath);
        return gate is null;
    }

    /// <summary>
    /// Waits (polling every 200 ms, for as long as it takes) until no exclusive test is waiting or running and a slot
    /// is free, and takes it.
    /// </summary>
    public static MachineSlot Take()
    {
        while (true)
        {
            if (!GateHeld())
                for (int slot = 0; slot < Slots; slot++)
                    if (TryLock(slot) is { } held) return new MachineSlot([held]);
            Thread.Sleep(200);
        }
    }

    /// <summary>
    /// Takes the gate, then every slot in order, waiting as long as it takes: no new test starts once the gate is held,
    /// so the running ones finish and the test then runs with no other multi-process test beside it.
    /// </summary>
    public static MachineSlot TakeAll()
    {
        var held = new List<FileStream>();
        FileStream? gate;
        while ((gate = TryLock(GatePath)) is null) Thread.Sleep(200);
        held.Add(gate);
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
