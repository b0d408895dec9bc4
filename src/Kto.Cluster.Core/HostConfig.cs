using System.Text.Json;

namespace Kto.Cluster.Core;

/// <summary>
/// A cluster host's settings (<c>config/*.json</c>): where it listens, the seed nodes, its roles, the run directory
/// and the journal. Read with <see cref="Load"/>; a bad file stops the host before anything starts, naming the key.
/// </summary>
/// <param name="Hostname">Address to bind and advertise.</param>
/// <param name="Port">Akka.Remote port (0 = any free port).</param>
/// <param name="SeedNodes">Akka addresses of the seed nodes, e.g. <c>akka.tcp://kto@127.0.0.1:9110</c>.</param>
/// <param name="Roles">Cluster roles of this host.</param>
/// <param name="RunDir">Run directory: the SQLite journal and checkpoints live here.</param>
/// <param name="JournalProvider"><c>sqlite</c> (default) or <c>postgres</c>.</param>
/// <param name="JournalConnectionString">For <c>postgres</c>: a Npgsql connection string. For <c>sqlite</c>: ignored.</param>
public sealed record HostConfig(string Hostname, int Port, IReadOnlyList<string> SeedNodes, IReadOnlyList<string> Roles,
    string RunDir, string JournalProvider, string? JournalConnectionString)
{
    /// <summary>The SQLite journal provider name in config files.</summary>
    public const string Sqlite = "sqlite";

    /// <summary>The PostgreSQL journal provider name in config files.</summary>
    public const string Postgres = "postgres";

    private static readonly string[] Known = ["hostname", "port", "seed_nodes", "roles", "run_dir", "journal"];

    /// <summary>The journal's connection string and LinqToDB provider.</summary>
    public (string ConnectionString, string Provider) Journal => JournalProvider == Postgres
        ? (JournalConnectionString!, PersistenceConfig.PostgresProvider)
        : (PersistenceConfig.SqliteConnectionString(Path.Combine(RunDir, PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider);

    /// <summary>The journal for people: the SQLite file's path, or PostgreSQL's host, port and database (never a password).</summary>
    public string JournalName => JournalProvider == Postgres
        ? new Npgsql.NpgsqlConnectionStringBuilder(JournalConnectionString) is var b ? $"PostgreSQL database {b.Database} at {b.Host}:{b.Port}" : ""
        : Path.GetFullPath(Path.Combine(RunDir, PersistenceConfig.DefaultSqliteFile));

    /// <summary>Reads and checks <paramref name="path"/>; relative run_dir resolves against the file's folder.</summary>
    /// <exception cref="InvalidDataException">The file is missing, malformed or holds a bad value (message names file and key).</exception>
    public static HostConfig Load(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: host config not found");
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}:{(e.LineNumber ?? 0) + 1}: malformed JSON: {e.Message}", e);
        }
        InvalidDataException Bad(string key, string expected) => new($"{path}: \"{key}\": expected {expected}");
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: expected a JSON object");
        foreach (JsonProperty p in root.EnumerateObject())
            if (!Known.Contains(p.Name)) throw new InvalidDataException($"{path}: \"{p.Name}\": unknown setting; known: {string.Join(", ", Known)}");

        string hostname = root.TryGetProperty("hostname", out var h) ? (h.ValueKind == JsonValueKind.String && h.GetString()!.Length > 0 ? h.GetString()! : throw Bad("hostname", "a host name or address")) : "127.0.0.1";
        int port = root.TryGetProperty("port", out var po) ? (po.ValueKind == JsonValueKind.Number && po.TryGetInt32(out int pv) && pv is >= 0 and <= 65535 ? pv : throw Bad("port", "an integer in [0, 65535]")) : 0;
        string[] StringList(string key)
        {
            if (!root.TryGetProperty(key, out var v)) return [];
            if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String)) throw Bad(key, "a list of strings");
            return [.. v.EnumerateArray().Select(x => x.GetString()!)];
        }
        string[] seeds = StringList("seed_nodes");
        foreach (string s in seeds)
            if (!s.StartsWith($"akka.tcp://{ClusterRoles.SystemName}@", StringComparison.Ordinal))
                throw Bad("seed_nodes", $"addresses like akka.tcp://{ClusterRoles.SystemName}@host:port, found \"{s}\"");
        string[] roles = StringList("roles");
        string[] knownRoles = [ClusterRoles.Coordinator, ClusterRoles.Trainer, ClusterRoles.Scorer];
        if (roles.Length == 0 || roles.Any(r => !knownRoles.Contains(r))) throw Bad("roles", $"one or more of {string.Join(", ", knownRoles)}");
        string runDir = root.TryGetProperty("run_dir", out var rd) ? (rd.ValueKind == JsonValueKind.String ? rd.GetString()! : throw Bad("run_dir", "a path")) : "runs/cluster";
        runDir = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, runDir));

        string provider = Sqlite;
        string? conn = null;
        if (root.TryGetProperty("journal", out var j))
        {
            if (j.ValueKind != JsonValueKind.Object) throw Bad("journal", "an object {\"provider\": \"sqlite\" | \"postgres\", \"connection_string\": …}");
            provider = j.TryGetProperty("provider", out var pr) && pr.ValueKind == JsonValueKind.String ? pr.GetString()! : throw Bad("journal.provider", "\"sqlite\" or \"postgres\"");
            if (provider is not (Sqlite or Postgres)) throw Bad("journal.provider", "\"sqlite\" or \"postgres\"");
            conn = j.TryGetProperty("connection_string", out var cs) && cs.ValueKind == JsonValueKind.String ? cs.GetString() : null;
            if (provider == Postgres && string.IsNullOrWhiteSpace(conn)) throw Bad("journal.connection_string", "a Npgsql connection string for the postgres journal");
        }
        return new HostConfig(hostname, port, seeds, roles, runDir, provider, conn);
    }
}
