using Akka.Configuration;

namespace Kto.Cluster.Core;

/// <summary>
/// Journal and snapshot store of the run coordinator: Akka.Persistence.Sql on a SQLite file in the run directory by
/// default, or PostgreSQL given a connection string. Also binds <see cref="KtoMessageSerializer"/>.
/// </summary>
public static class PersistenceConfig
{
    /// <summary>LinqToDB's provider name for Microsoft.Data.Sqlite.</summary>
    public const string SqliteProvider = "SQLite.MS";

    /// <summary>LinqToDB's provider name for PostgreSQL (Npgsql).</summary>
    public const string PostgresProvider = "PostgreSQL.15";

    /// <summary>The default journal file inside a run directory.</summary>
    public const string DefaultSqliteFile = "journal.sqlite";

    /// <summary>Connection string of a SQLite journal file (created on first use).</summary>
    public static string SqliteConnectionString(string file) => $"Data Source={Path.GetFullPath(file)}";

    /// <summary>HOCON for the journal, the snapshot store and the serializer binding.</summary>
    public static Config Hocon(string connectionString, string providerName)
    {
        string conn = Quote(connectionString);
        return ConfigurationFactory.ParseString($$"""
            akka.persistence {
              journal {
                plugin = "akka.persistence.journal.sql"
                sql {
                  connection-string = {{conn}}
                  provider-name = "{{providerName}}"
                  auto-initialize = true
                }
              }
              query.journal.sql {
                connection-string = {{conn}}
                provider-name = "{{providerName}}"
              }
              snapshot-store {
                plugin = "akka.persistence.snapshot-store.sql"
                sql {
                  connection-string = {{conn}}
                  provider-name = "{{providerName}}"
                  auto-initialize = true
                }
              }
            }
            """).WithFallback(SerializerHocon())
             .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration)
             .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultQueryConfiguration);
    }

    /// <summary>HOCON binding <see cref="KtoMessageSerializer"/> to the protocol marker (every host needs it).</summary>
    public static Config SerializerHocon()
    {
        string serializer = typeof(KtoMessageSerializer).AssemblyQualifiedName!.Split(", Version", 2)[0];
        string marker = typeof(Kto.Domain.Cluster.IKtoMessage).AssemblyQualifiedName!.Split(", Version", 2)[0];
        return ConfigurationFactory.ParseString($$"""
            akka.actor {
              serializers.kto = "{{serializer}}"
              serialization-bindings { "{{marker}}" = kto }
              serialization-identifiers { "{{serializer}}" = {{KtoMessageSerializer.Id}} }
            }
            """);
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
