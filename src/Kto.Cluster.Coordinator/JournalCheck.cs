using Kto.Cluster.Core;
using Microsoft.Data.Sqlite;

namespace Kto.Cluster.Coordinator;

/// <summary>
/// The check of a SQLite journal before the coordinator host starts: SQLite's <c>PRAGMA quick_check</c> (every page
/// and record well-formed; O(size of the file), no index cross-checks). A file SQLite cannot open as a database stops
/// the host; other findings are printed as a warning and the run goes on as long as every event it needs reads back
/// (a failure to read one stops the host then, naming it).
/// </summary>
public static class JournalCheck
{
    /// <summary>Checks the journal of <paramref name="config"/>; prints warnings; returns a one-line error if it cannot be used.</summary>
    public static string? Run(HostConfig config)
    {
        if (config.JournalProvider != HostConfig.Sqlite) return null; // PostgreSQL checks its own pages
        string file = config.JournalName;
        if (!File.Exists(file)) return null;
        try
        {
            var problems = QuickCheck(file);
            if (problems.Count == 0) return null;
            Console.Error.WriteLine($"warning: journal {file} fails SQLite's integrity check ({problems.Count} problem(s); first: {problems[0]}). " +
                "The run goes on while every event it needs reads back; back the file up now, and restore it from a backup if recovery fails");
            return null;
        }
        catch (SqliteException e) when (JournalFaults.Classify(e) == JournalFaultKind.Damaged)
        {
            return $"journal {file} is damaged ({e.Message.ReplaceLineEndings(" ")}): restore it from a backup, or start a new run from the latest checkpoint: " +
                "set resume_from_checkpoint to it (or \"latest\") in the run config and start it with another --run-id";
        }
    }

    /// <summary>The lines of <c>PRAGMA quick_check</c> other than "ok" (at most 10).</summary>
    /// <exception cref="SqliteException">The file cannot be opened or read as a SQLite database.</exception>
    public static List<string> QuickCheck(string file)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA quick_check(10)";
        var lines = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read()) lines.Add(reader.GetString(0));
        return lines.Count == 1 && lines[0] == "ok" ? [] : lines;
    }
}
