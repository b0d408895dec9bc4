namespace Kto.Cluster.Coordinator;

/// <summary>
/// Host of the <c>coordinator</c> role. What exists today: the event-sourced <c>RunCoordinatorActor</c> and its
/// persistence (tested in-process against SQLite files). The cluster host, the step protocol and the trainer nodes
/// are not built yet, so this program only says so and exits.
/// </summary>
public static class Program
{
    /// <summary>Exit code for "this role cannot run yet".</summary>
    public const int NotImplemented = 3;

    /// <summary>Prints the host's status and exits.</summary>
    public static int Main()
    {
        Console.Error.WriteLine("Kto.Cluster.Coordinator: the cluster host is not implemented yet; use `kto train --config <run.json>` for single-process training.");
        return NotImplemented;
    }
}
