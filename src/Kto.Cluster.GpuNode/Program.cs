namespace Kto.Cluster.GpuNode;

/// <summary>
/// Host of the <c>trainer</c> and <c>scorer</c> roles. Not implemented yet: trainer replicas, reference scorers
/// and the gradient exchange are planned (see docs/architecture.md). The step they will run already exists as
/// <c>Kto.Domain.Training.KtoStepper</c>, used today by <c>kto train</c>.
/// </summary>
public static class Program
{
    /// <summary>Exit code for "this role cannot run yet".</summary>
    public const int NotImplemented = 3;

    /// <summary>Prints the host's status and exits.</summary>
    public static int Main()
    {
        Console.Error.WriteLine("Kto.Cluster.GpuNode: trainer and scorer nodes are not implemented yet; use `kto train --config <run.json>` for single-process training.");
        return NotImplemented;
    }
}
