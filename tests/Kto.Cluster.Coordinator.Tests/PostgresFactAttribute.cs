using Xunit;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>A fact that needs the PostgreSQL server named by <c>KTO_TEST_POSTGRES</c>; skipped (visibly) without it.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    /// <summary>The environment variable holding the connection string.</summary>
    public const string Variable = "KTO_TEST_POSTGRES";

    /// <summary>The connection string, or null.</summary>
    public static string? ConnectionString => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } s ? s : null;

    /// <summary>Sets Skip when no server is configured.</summary>
    public PostgresFactAttribute()
    {
        if (ConnectionString is null) Skip = $"no PostgreSQL server: set {Variable} (bash .ci/run starts one and sets it)";
    }
}
