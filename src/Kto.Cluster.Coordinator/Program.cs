namespace Kto.Cluster.Coordinator;

/// <summary>
/// Host of the <c>coordinator</c> role. Not implemented yet: the run coordinator singleton, its journal and the
/// step protocol are planned (see docs/architecture.md). Until then this host only says so, and training runs in
/// one process with <c>kto train</c>.
/// </summary>
public static class Program
{
    /// <summary>Exit code for "this role cannot run yet".</summary>
    public const int NotImplemented = 3;

    /// <summary>Prints the host's status and exits.</summary>
    public static int Main()
    {
        Console.Error.WriteLine("Kto.Cluster.Coordinator: the cluster coordinator is not implemented yet; use `kto train --config <run.json>` for single-process training.");
        return NotImplemented;
    }
}
