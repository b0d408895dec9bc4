using Kto.Cluster.Core;
using Microsoft.Data.Sqlite;

namespace Kto.Cluster.Coordinator;

/// <summary>
/// The check of a SQLite journal before the coordinator host starts: SQLite's <c>PRAGMA quick_check</c> (every page
/// and record well-formed; O(size of the file), no index cross-checks), and for a file that fails it, reading back
/// every event and snapshot of the file.
/// </summary>
public static class JournalCheck
{
    /// <summary>
    /// Checks the journal of <paramref name="config"/>. A file that fails SQLite's check is read back: if the run's own
    /// events and snapshots all read, a warning names the file and the run goes on; if they do not, the one-line error
    /// returned names the file and the last sequence number that reads, and the host must not start (the SQL plugin
    /// would retry a damaged file for ever).
    /// </summary>
    public static string? Run(HostConfig config)
    {
        if (config.JournalProvider != HostConfig.Sqlite) return null; // PostgreSQL checks its own pages
        string file = config.JournalName;
        if (!File.Exists(file)) return null;
        string? problem;
        try
        {
            var problems = QuickCheck(file);
            problem = problems.Count == 0 ? null : $"{problems.Count} problem(s); first: {problems[0]}";
        }
        catch (SqliteException e) when (e.SqliteErrorCode == SqliteReadOnly)
        {
            // Not a sign of damage (a log that needs recovering, a file another process holds): the journal plugin
            // opens the file itself and reports what it cannot read.
            Console.Error.WriteLine($"warning: journal {file} could not be checked before start ({JournalFaults.Describe(e)}); the run goes on");
            return null;
        }
        catch (SqliteException e)
        {
            problem = JournalFaults.Describe(e);
        }
        if (problem is null) return null;
        long lastRead = 0;
        try
        {
            lastRead = ReadBack(file);
        }
        catch (SqliteException e)
        {
            return $"journal {file} is damaged: {problem}; its events read back only up to sequence number {ReadableUpTo(file)} ({JournalFaults.Describe(e)}). " + WhatToDo;
        }
        Console.Error.WriteLine($"warning: journal {file} fails SQLite's integrity check ({problem}), but all {lastRead} events of its runs read back; " +
            "the run goes on. Back the file up now, and copy it to a sound disk");
        return null;
    }

    /// <summary>SQLITE_READONLY, the primary code of "attempt to write a readonly database" (also SQLITE_READONLY_RECOVERY).</summary>
    private const int SqliteReadOnly = 8;

    /// <summary>What an operator does with a journal that cannot be recovered.</summary>
    public const string WhatToDo = "Restore the journal from a backup, or start a new run from the latest checkpoint: set resume_from_checkpoint " +
        "to it (or \"latest\") in the run config and start it with another --run-id";

    /// <summary>Reads every row of the journal and snapshot tables; returns the events read.</summary>
    /// <exception cref="SqliteException">A row cannot be read.</exception>
    public static long ReadBack(string file)
    {
        using var connection = Open(file);
        long events = 0;
        foreach (string table in new[] { "journal", "snapshot" })
        {
            if (!Exists(connection, table)) continue;
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT * FROM {table}";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                for (int i = 0; i < reader.FieldCount; i++) _ = reader.GetValue(i);
                if (table == "journal") events++;
            }
        }
        return events;
    }

    /// <summary>The highest sequence number up to which the journal's events read in order (0 if none).</summary>
    private static long ReadableUpTo(string file)
    {
        long last = 0;
        try
        {
            using var connection = Open(file);
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT sequence_number, message FROM journal ORDER BY rowid";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                _ = reader.GetValue(1);
                last = reader.GetInt64(0);
            }
        }
        catch (SqliteException)
        {
            // stops where the damage starts
        }
        return last;
    }

    private static bool Exists(SqliteConnection connection, string table)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $name";
        command.Parameters.AddWithValue("$name", table);
        return (long)command.ExecuteScalar()! > 0;
    }

    private static SqliteConnection Open(string file)
    {
        // Read-write (never creating): after a coordinator was killed, its write-ahead log may need recovering, which a
        // read-only connection cannot do (SQLITE_READONLY_RECOVERY, "attempt to write a readonly database"); the
        // check itself writes nothing.
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>The lines of <c>PRAGMA quick_check</c> other than "ok" (at most 10).</summary>
    /// <exception cref="SqliteException">The file cannot be opened or read as a SQLite database.</exception>
    public static List<string> QuickCheck(string file)
    {
        using var connection = Open(file);
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA quick_check(10)";
        var lines = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read()) lines.Add(reader.GetString(0));
        return lines.Count == 1 && lines[0] == "ok" ? [] : lines;
    }
}
