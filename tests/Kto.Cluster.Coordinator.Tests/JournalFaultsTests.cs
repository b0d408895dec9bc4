using Kto.Domain.Cluster;
using MessagePack;
using Microsoft.Data.Sqlite;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>What journal failures mean, classified from real SQLite errors; older journals still read.</summary>
public sealed class JournalFaultsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-faults-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private SqliteConnection Open(string name)
    {
        var c = new SqliteConnection($"Data Source={Path.Combine(_dir, name)};Pooling=False");
        c.Open();
        return c;
    }

    private static SqliteException Fails(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Assert.Throws<SqliteException>(() => cmd.ExecuteNonQuery());
    }

    [Fact]
    public void ASequenceNumberWrittenTwiceIsAnotherWriter()
    {
        using var c = Open("j.sqlite");
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "CREATE TABLE journal(persistence_id TEXT, sequence_number INTEGER, PRIMARY KEY (persistence_id, sequence_number)); INSERT INTO journal VALUES ('r', 1)";
            cmd.ExecuteNonQuery();
        }
        SqliteException e = Fails(c, "INSERT INTO journal VALUES ('r', 1)");
        Assert.Equal(JournalFaultKind.AnotherWriter, JournalFaults.Classify(new ApplicationException("write failed", e)));
        Assert.Contains("UNIQUE constraint failed", JournalFaults.Describe(new AggregateException(new ApplicationException("write failed", e))));
    }

    [Fact]
    public void AFileThatIsNotADatabaseIsDamagedAndOtherFailuresAreTransient()
    {
        File.WriteAllBytes(Path.Combine(_dir, "junk.sqlite"), new Random(1).GetItems<byte>([1, 2, 3, 200], 8192));
        using var c = Open("junk.sqlite");
        SqliteException e = Fails(c, "SELECT * FROM journal");
        Assert.Equal(26, e.SqliteErrorCode);
        Assert.Equal(JournalFaultKind.Damaged, JournalFaults.Classify(new ApplicationException("Failed to initialize SQL Journal.", e)));

        using var ok = Open("ok.sqlite");
        SqliteException missing = Fails(ok, "INSERT INTO nowhere VALUES (1)"); // SQLITE_ERROR: e.g. a schema the plugin creates on its next start
        Assert.Equal(JournalFaultKind.Transient, JournalFaults.Classify(missing));
        Assert.Equal(JournalFaultKind.Transient, JournalFaults.Classify(new IOException("No space left on device")));
        Assert.Equal(JournalFaultKind.Transient, JournalFaults.Classify(new TimeoutException("circuit breaker")));
    }

    [Fact]
    public void AnEventThatDoesNotDeserializeOrDoesNotFollowIsDamaged()
    {
        var bad = Assert.ThrowsAny<MessagePackSerializationException>(() => MessagePackSerializer.Deserialize<IRunEvent>(new byte[] { 0x92, 0x63, 0xc1 },
            MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData)));
        Assert.Equal(JournalFaultKind.Damaged, JournalFaults.Classify(new Exception("replay failed", bad)));
        Assert.Equal(JournalFaultKind.Damaged, JournalFaults.Classify(new InvalidOperationException("StepCommitted rejected"), new StepCommitted(3, 1, ["a"], 1)));
    }

    [Fact]
    public void EventsWrittenBeforeTheNewFieldsReadWithTheirDefaults()
    {
        var options = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);
        // [union key, [fields…]] as the earlier contracts wrote them: CoordinatorIncarnated(3), StepCommitted(2, 9, ["a"], 5)
        byte[] incarnated = [0x92, 0x01, 0x91, 0x03];
        byte[] committed = [0x92, 0x02, 0x94, 0x02, 0x09, 0x91, 0xa1, (byte)'a', 0x05];
        var i = Assert.IsType<CoordinatorIncarnated>(MessagePackSerializer.Deserialize<IRunEvent>(incarnated, options));
        Assert.Equal(3, i.Incarnation);
        Assert.Null(i.Writer);
        var c = Assert.IsType<StepCommitted>(MessagePackSerializer.Deserialize<IRunEvent>(committed, options));
        Assert.Equal((2, 9L, 5UL), (c.Step, c.Generation, c.Checksum));
        Assert.Null(c.Metrics);
        Assert.Equal(0, c.Seconds);
    }
}
