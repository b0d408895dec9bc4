namespace Kto.Cluster.Core.Logging;

/// <summary>
/// A thread-safe writer of lines a stranger can cause once per connection (a refused TLS peer on the ring): of each
/// kind the first line is written in full, the repeats in the next <see cref="RepeatedLogGate.Span"/> are counted
/// and reported in one line when the window ends (checked every second and on every write).
/// </summary>
public sealed class RepeatedLines : IDisposable
{
    private readonly RepeatedLogGate _gate;
    private readonly Action<string> _write;
    private readonly Func<DateTime> _now;
    private readonly Dictionary<string, string> _firstOfKind = new(StringComparer.Ordinal);
    private readonly Timer? _timer;

    /// <param name="window">How long after a full line repeats of its kind are only counted.</param>
    /// <param name="write">Writes one line (stderr, a log); called under this object's lock.</param>
    /// <param name="now">The clock (UTC); tests pass their own and call <see cref="Flush"/>, and no timer is started.</param>
    public RepeatedLines(TimeSpan window, Action<string> write, Func<DateTime>? now = null)
    {
        _gate = new RepeatedLogGate(window);
        _write = write;
        _now = now ?? (() => DateTime.UtcNow);
        if (now is null) _timer = new Timer(_ => Flush(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Writes <paramref name="line"/> when it is the first of <paramref name="kind"/> in a window, else counts it.</summary>
    public void Write(string kind, string line)
    {
        lock (_gate)
        {
            DateTime now = _now();
            ReportEnded(now);
            if (!_gate.Admit(kind, now)) return;
            _firstOfKind[kind] = line;
            _write(line);
        }
    }

    /// <summary>Reports the windows that have ended with repeats.</summary>
    public void Flush()
    {
        lock (_gate) ReportEnded(_now());
    }

    private void ReportEnded(DateTime now)
    {
        foreach ((string kind, long repeats) in _gate.Ended(now))
            if (_firstOfKind.TryGetValue(kind, out string? first))
                _write($"{first} (and {repeats} more like it in the {_gate.Span.TotalSeconds:0} s after it, not written one by one)");
    }

    /// <summary>Stops the timer and reports every window with repeats, ended or not.</summary>
    public void Dispose()
    {
        _timer?.Dispose();
        lock (_gate) ReportEnded(DateTime.MaxValue);
    }
}
