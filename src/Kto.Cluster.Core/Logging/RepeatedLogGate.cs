namespace Kto.Cluster.Core.Logging;

/// <summary>
/// Decides which of a kind of repeated log line is written: the first of each kind in full, then, for the rest of a
/// window, only a count, reported once when the window ends. A stranger opening a thousand connections a second to a
/// listening port then costs the log one full line and one count line per window instead of a thousand stack traces
/// a second. Not thread-safe: one owner (a logger actor, or a caller holding a lock).
/// </summary>
/// <param name="window">How long after a full line repeats of its kind are only counted; positive.</param>
public sealed class RepeatedLogGate(TimeSpan window)
{
    private readonly Dictionary<string, Window> _open = new(StringComparer.Ordinal);

    /// <summary>How long after a full line repeats of its kind are only counted.</summary>
    public TimeSpan Span { get; } = window > TimeSpan.Zero ? window : throw new ArgumentOutOfRangeException(nameof(window), window, "the window must be positive");

    /// <summary>Whether a line of <paramref name="kind"/> seen at <paramref name="now"/> is written in full (true), or counted (false).</summary>
    public bool Admit(string kind, DateTime now)
    {
        if (_open.TryGetValue(kind, out Window? w) && now < w.Start + Span)
        {
            w.Repeats++;
            return false;
        }
        _open[kind] = new Window(now);
        return true;
    }

    /// <summary>
    /// The kinds whose window has ended by <paramref name="now"/> with repeats in it, with how many (in the order their
    /// windows opened), and forgets every ended window: the next line of such a kind is written in full again.
    /// </summary>
    public IReadOnlyList<(string Kind, long Repeats)> Ended(DateTime now)
    {
        var ended = new List<(string, long, DateTime)>();
        foreach ((string kind, Window w) in _open)
            if (now >= w.Start + Span) ended.Add((kind, w.Repeats, w.Start));
        foreach ((string kind, _, _) in ended) _open.Remove(kind);
        return [.. ended.Where(e => e.Item2 > 0).OrderBy(e => e.Item3).Select(e => (e.Item1, e.Item2))];
    }

    private sealed class Window(DateTime start)
    {
        public DateTime Start { get; } = start;

        public long Repeats { get; set; }
    }
}
