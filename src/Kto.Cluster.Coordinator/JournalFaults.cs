using System.Runtime.Serialization;
using MessagePack;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Kto.Cluster.Coordinator;

/// <summary>What a journal failure means for the run coordinator.</summary>
public enum JournalFaultKind
{
    /// <summary>Storage that may work again (a full disk, a lost database connection, a busy file): retried with a back-off.</summary>
    Transient,

    /// <summary>Another coordinator writes the same run's journal (a sequence number it wrote first): this host stops.</summary>
    AnotherWriter,

    /// <summary>The journal cannot be read back as a run (a corrupt file, an event that does not deserialize or does not
    /// follow from the ones before it): this host stops; an operator restores it or starts a new run from a checkpoint.</summary>
    Damaged,
}

/// <summary>Classifies journal failures of the run coordinator (pure, from the exception chain).</summary>
public static class JournalFaults
{
    /// <summary>SQLite's primary result codes that mean the file is damaged: SQLITE_CORRUPT (11) and SQLITE_NOTADB (26).</summary>
    private static readonly int[] SqliteDamaged = [11, 26];

    /// <summary>SQLITE_CONSTRAINT (19).</summary>
    private const int SqliteConstraint = 19;

    /// <summary>PostgreSQL's unique_violation.</summary>
    private const string PostgresUniqueViolation = "23505";

    /// <summary>
    /// The kind of a failure. <paramref name="replayedEvent"/> is the event being replayed when the coordinator's own
    /// recovery handler threw (the event does not follow from the journal before it), null otherwise.
    /// </summary>
    public static JournalFaultKind Classify(Exception cause, object? replayedEvent = null)
    {
        if (replayedEvent is not null) return JournalFaultKind.Damaged;
        foreach (Exception e in Chain(cause))
        {
            switch (e)
            {
                case SqliteException s when s.SqliteErrorCode == SqliteConstraint && s.Message.Contains("UNIQUE", StringComparison.OrdinalIgnoreCase):
                    return JournalFaultKind.AnotherWriter;
                case SqliteException s when SqliteDamaged.Contains(s.SqliteErrorCode):
                    return JournalFaultKind.Damaged;
                case PostgresException p when p.SqlState == PostgresUniqueViolation:
                    return JournalFaultKind.AnotherWriter;
                case PostgresException p when p.SqlState.StartsWith("XX", StringComparison.Ordinal) && p.SqlState != "XX000":
                    return JournalFaultKind.Damaged; // data_corrupted, index_corrupted
                case MessagePackSerializationException or SerializationException:
                    return JournalFaultKind.Damaged;
            }
        }
        return JournalFaultKind.Transient;
    }

    /// <summary>The innermost message of the chain that says most (the database's own words), on one line.</summary>
    public static string Describe(Exception cause)
    {
        Exception chosen = Chain(cause).FirstOrDefault(e => e is SqliteException or PostgresException or NpgsqlException or MessagePackSerializationException or SerializationException or IOException)
            ?? Chain(cause).Last();
        return chosen.Message.ReplaceLineEndings(" ").Trim().TrimEnd('.');
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        var seen = new HashSet<Exception>(ReferenceEqualityComparer.Instance);
        var todo = new Stack<Exception>();
        todo.Push(e);
        while (todo.Count > 0)
        {
            Exception x = todo.Pop();
            if (!seen.Add(x)) continue;
            yield return x;
            if (x is AggregateException a)
                foreach (Exception inner in a.InnerExceptions.Reverse()) todo.Push(inner);
            else if (x.InnerException is { } inner) todo.Push(inner);
        }
    }
}
