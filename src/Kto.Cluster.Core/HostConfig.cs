using System.Text.Json;

namespace Kto.Cluster.Core;

/// <summary>
/// A cluster host's settings (<c>config/*.json</c>): where it listens, the seed nodes, its roles, the run directory
/// and the journal. Read with <see cref="Load"/>; a bad file stops the host before anything starts, naming the key.
/// </summary>
/// <param name="Hostname">Address to bind and advertise.</param>
/// <param name="Port">Akka.Remote port (0 = any free port).</param>
/// <param name="SeedNodes">Akka addresses of the seed nodes, e.g. <c>akka.tcp://kto@127.0.0.1:9110</c> (<c>akka.ssl.tcp://…</c> with TLS).</param>
/// <param name="Roles">Cluster roles of this host.</param>
/// <param name="RunDir">Run directory: the SQLite journal and checkpoints live here.</param>
/// <param name="JournalProvider"><c>sqlite</c> (default) or <c>postgres</c>.</param>
/// <param name="JournalConnectionString">For <c>postgres</c>: a Npgsql connection string. For <c>sqlite</c>: ignored.</param>
/// <param name="Tls">TLS with mutual authentication on Akka.Remote and the gradient ring (<c>"tls"</c>), or null for plain TCP.</param>
public sealed record HostConfig(string Hostname, int Port, IReadOnlyList<string> SeedNodes, IReadOnlyList<string> Roles,
    string RunDir, string JournalProvider, string? JournalConnectionString, HostTlsConfig? Tls = null)
{
    /// <summary>The SQLite journal provider name in config files.</summary>
    public const string Sqlite = "sqlite";

    /// <summary>The PostgreSQL journal provider name in config files.</summary>
    public const string Postgres = "postgres";

    /// <summary>The scheme of Akka addresses over plain TCP.</summary>
    public const string PlainScheme = "akka.tcp";

    /// <summary>The scheme of Akka addresses over TLS (DotNetty with <c>enable-ssl</c>).</summary>
    public const string TlsScheme = "akka.ssl.tcp";

    private static readonly string[] Known = ["hostname", "port", "seed_nodes", "roles", "run_dir", "journal", "tls"];

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
            if (j.TryGetProperty("password_env", out var pwe))
            {
                // The password from the environment, so the file (often in version control) holds no secret.
                if (provider != Postgres || pwe.ValueKind != JsonValueKind.String || pwe.GetString()!.Length == 0)
                    throw Bad("journal.password_env", "the name of an environment variable holding the PostgreSQL password (postgres journal only)");
                string variable = pwe.GetString()!;
                string password = Environment.GetEnvironmentVariable(variable) ?? throw Bad("journal.password_env", $"an environment variable that is set; {variable} is not");
                try
                {
                    conn = new Npgsql.NpgsqlConnectionStringBuilder(conn) { Password = password }.ConnectionString;
                }
                catch (ArgumentException e)
                {
                    throw Bad("journal.connection_string", $"a Npgsql connection string ({e.Message})");
                }
            }
        }
        HostTlsConfig? tls = null;
        if (root.TryGetProperty("tls", out var t))
        {
            const string shape = "an object {\"certificate\": \"HOST.pfx\", \"ca\": \"ca.crt\", \"password_env\": \"VARIABLE\" (optional)}";
            if (t.ValueKind != JsonValueKind.Object) throw Bad("tls", shape);
            foreach (JsonProperty p in t.EnumerateObject())
                if (p.Name is not ("certificate" or "ca" or "password_env")) throw Bad($"tls.{p.Name}", "no such setting: " + shape);
            string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            string File(string key) => t.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0
                ? Path.GetFullPath(Path.Combine(folder, v.GetString()!)) : throw Bad($"tls.{key}", "a file path (relative to this file's folder)");
            string? passwordEnv = t.TryGetProperty("password_env", out var pe)
                ? pe.ValueKind == JsonValueKind.String && pe.GetString()!.Length > 0 ? pe.GetString() : throw Bad("tls.password_env", "the name of an environment variable holding the .pfx password")
                : null;
            tls = new HostTlsConfig(File("certificate"), File("ca"), passwordEnv);
        }
        // Akka.Remote names the TLS transport's addresses akka.ssl.tcp: a seed of the other scheme is never reached.
        string scheme = tls is null ? PlainScheme : TlsScheme;
        string[] seeds = StringList("seed_nodes");
        foreach (string s in seeds)
            if (!s.StartsWith($"{scheme}://{ClusterRoles.SystemName}@", StringComparison.Ordinal))
                throw Bad("seed_nodes", $"addresses like {scheme}://{ClusterRoles.SystemName}@host:port{(tls is null ? "" : " (the scheme of Akka.Remote over TLS, as \"tls\" is set)")}, found \"{s}\"");
        return new HostConfig(hostname, port, seeds, roles, runDir, provider, conn, tls);
    }
}

/// <summary>A host config's <c>"tls"</c>: the host's certificate, the cluster's CA and where the certificate's password is.</summary>
/// <param name="CertificatePath">The host's PKCS#12 file (<c>kto certs host</c> writes <c>NAME.pfx</c>).</param>
/// <param name="AuthorityPath">The cluster's <c>ca.crt</c>.</param>
/// <param name="PasswordEnv">The environment variable holding the .pfx password (never the password itself), or null.</param>
public sealed record HostTlsConfig(string CertificatePath, string AuthorityPath, string? PasswordEnv)
{
    /// <summary>Loads the certificate and the CA and checks the certificate is a valid host certificate of that CA.</summary>
    /// <exception cref="InvalidDataException">The password's variable is not set, or <see cref="Security.ClusterTls.Load"/> refused.</exception>
    public Security.ClusterTls Open()
    {
        string? password = null;
        if (PasswordEnv is not null)
            password = Environment.GetEnvironmentVariable(PasswordEnv) ?? throw new InvalidDataException($"tls.password_env: the environment variable {PasswordEnv} is not set");
        return Security.ClusterTls.Load(CertificatePath, password, AuthorityPath, Security.CertificateHolder.Host);
    }
}
