using Akka.Event;
using Kto.Cluster.Core.Logging;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The gate that writes the first of a kind of repeated line and counts the rest, and its two users' rules.</summary>
public sealed class RepeatedLogTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void TheFirstOfAKindIsWrittenItsRepeatsInTheWindowAreCountedAndTheNextWindowStartsWithAFullLine()
    {
        var gate = new RepeatedLogGate(TimeSpan.FromSeconds(10));
        Assert.True(gate.Admit("a", T0));
        Assert.False(gate.Admit("a", T0.AddSeconds(1)));
        Assert.False(gate.Admit("a", T0.AddSeconds(9.9)));
        Assert.True(gate.Admit("b", T0.AddSeconds(2))); // another kind has its own window
        Assert.Empty(gate.Ended(T0.AddSeconds(9.99)));
        // a's window ends at 10 s with 2 repeats; b's (no repeats) at 12 s with nothing to report.
        Assert.Equal([("a", 2L)], gate.Ended(T0.AddSeconds(10)));
        Assert.Empty(gate.Ended(T0.AddSeconds(12)));
        Assert.True(gate.Admit("a", T0.AddSeconds(10.5)));
        Assert.True(gate.Admit("b", T0.AddSeconds(12.5)));
    }

    [Fact]
    public void EndedWindowsAreReportedInTheOrderTheyOpenedAndOnlyOnce()
    {
        var gate = new RepeatedLogGate(TimeSpan.FromSeconds(1));
        gate.Admit("late", T0.AddSeconds(0.5));
        gate.Admit("early", T0);
        gate.Admit("late", T0.AddSeconds(0.6));
        gate.Admit("early", T0.AddSeconds(0.1));
        gate.Admit("early", T0.AddSeconds(0.2));
        Assert.Equal([("early", 2L), ("late", 1L)], gate.Ended(T0.AddSeconds(5)));
        Assert.Empty(gate.Ended(T0.AddSeconds(6)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RepeatedLogGate(TimeSpan.Zero));
    }

    [Fact]
    public void RepeatedLinesWritesTheFirstThenOneCountLinePerWindowAndTheRestOnDispose()
    {
        DateTime now = T0;
        var written = new List<string>();
        var lines = new RepeatedLines(TimeSpan.FromSeconds(10), written.Add, () => now);
        for (int i = 0; i < 1000; i++)
        {
            now = T0.AddMilliseconds(5 * i); // 1000 refusals in 5 s
            lines.Write("other CA", "ring: TLS refused a connection: not issued by this cluster's CA");
        }
        lines.Write("expired", "ring: TLS refused a connection: expired");
        Assert.Equal(["ring: TLS refused a connection: not issued by this cluster's CA", "ring: TLS refused a connection: expired"], written);
        now = T0.AddSeconds(10);
        lines.Flush();
        Assert.Equal(3, written.Count);
        Assert.Equal("ring: TLS refused a connection: not issued by this cluster's CA (and 999 more like it in the 10 s after it, not written one by one)", written[2]);
        lines.Write("expired", "ring: TLS refused a connection: expired");
        lines.Dispose();
        Assert.Equal("ring: TLS refused a connection: expired (and 1 more like it in the 10 s after it, not written one by one)", written[^1]);
        Assert.Equal(4, written.Count);
    }

    [Fact]
    public void OnlyTheRemoteTransportsLinesAreGatedAndTheirKindIsLevelClassTemplateAndException()
    {
        Type handler = typeof(Akka.Remote.RemoteTransportException).Assembly.GetTypes().Single(t => t.FullName == "Akka.Remote.Transport.DotNetty.TcpServerHandler");
        LogEvent Caught(int id, Exception cause) =>
            new Error(cause, "TcpServerHandler (akka://kto)", handler, new Template("Error caught channel [{0}->{1}](Id={2})", "a", "b", id));
        string? one = EdgeQuietLogger.KindOf(Caught(1, new InvalidOperationException("x 1")));
        Assert.NotNull(one);
        Assert.Equal(one, EdgeQuietLogger.KindOf(Caught(2, new InvalidOperationException("x 2")))); // other channel, other message: same kind
        Assert.NotEqual(one, EdgeQuietLogger.KindOf(Caught(1, new FormatException("x"))));
        Assert.Null(EdgeQuietLogger.KindOf(new Info("coordinator", typeof(RepeatedLogTests), "step 3 generation 1 committed")));
        Assert.Null(EdgeQuietLogger.KindOf(new Warning("cluster", typeof(Akka.Cluster.Cluster), "Couldn't join seed nodes after [3] attempts")));

        LogEvent summary = EdgeQuietLogger.Summary(Caught(1, new InvalidOperationException("frame too long\n   at somewhere")), 532);
        Assert.IsType<Error>(summary);
        Assert.Equal("TcpServerHandler (akka://kto)", summary.LogSource);
        Assert.Null(summary.Cause); // no stack trace to format
        Assert.Equal("532 more like \"Error caught channel [{0}->{1}](Id={2})\" (InvalidOperationException: frame too long) in the 10 s after it, not written one by one",
            summary.Message.ToString());
    }

    /// <summary>A log message as Akka's adapters make them (theirs are internal): a template and its arguments.</summary>
    private sealed class Template(string format, params object[] args) : LogMessage(DefaultLogMessageFormatter.Instance, format)
    {
        public override string ToString() => Formatter.Format(Format, args);

        public override string Unformatted() => Format;

        public override IEnumerable<object> Parameters() => args;
    }
}
