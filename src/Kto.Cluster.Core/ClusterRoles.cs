namespace Kto.Cluster.Core;

/// <summary>Role and actor names, in one place.</summary>
public static class ClusterRoles
{
    /// <summary>Hosts the run coordinator singleton.</summary>
    public const string Coordinator = "coordinator";

    /// <summary>Holds a policy replica and trains shards.</summary>
    public const string Trainer = "trainer";

    /// <summary>Holds the frozen reference model and scores ahead of training.</summary>
    public const string Scorer = "scorer";

    /// <summary>Name of a node's trainer actor under /user.</summary>
    public const string TrainerActor = "trainer";

    /// <summary>Name of a node's scorer actor under /user.</summary>
    public const string ScorerActor = "scorer";

    /// <summary>Name of a coordinator host's command receptionist under /user (what <c>kto HOST:PORT …</c> talks to).</summary>
    public const string CommandActor = "kto-cmd";

    /// <summary>The actor system's name (all members of one cluster share it).</summary>
    public const string SystemName = "kto";
}
