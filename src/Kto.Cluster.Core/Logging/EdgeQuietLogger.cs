using Akka.Actor;
using Akka.Event;
using Akka.Hosting;

namespace Kto.Cluster.Core.Logging;

/// <summary>
/// The cluster processes' Akka logger: Akka's <see cref="DefaultLogger"/> (the same lines on stdout, the same format),
/// except for what Akka.Remote's transport logs about single connections (<c>Akka.Remote.Transport.*</c>: DotNetty's
/// "Error caught channel" with the decoder's or the TLS handshake's exception, resets, the protocol's refusals). Those
/// a stranger can cause at will, once per connection: of each kind (level, class, message template, exception type)
/// the first is written in full, the repeats in the next <see cref="Window"/> are counted and reported in one line when
/// it ends. Without it, each connection of random bytes into a coordinator's port wrote two errors with stack traces
/// (about 1 KB each): at a few hundred connections a second, tens of gigabytes of log a day.
/// </summary>
public sealed class EdgeQuietLogger : DefaultLogger
{
    /// <summary>How long after a transport line is written its repeats are only counted.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    /// <summary>Makes this the only logger of an actor system built with Akka.Hosting (<c>akka.ConfigureLoggers(EdgeQuietLogger.Configure)</c>).</summary>
    public static void Configure(LoggerConfigBuilder loggers)
    {
        loggers.ClearLoggers();
        loggers.AddLogger<EdgeQuietLogger>();
    }

    private readonly RepeatedLogGate _gate = new(Window);

    /// <summary>The full line of each kind's latest window (kinds are few: templates × classes × exception types).</summary>
    private readonly Dictionary<string, LogEvent> _firstOfKind = new(StringComparer.Ordinal);

    private ICancelable? _tick;

    protected override bool Receive(object message)
    {
        switch (message)
        {
            case InitializeLogger:
                _tick = Context.System.Scheduler.ScheduleTellRepeatedlyCancelable(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), Self, Tick.Instance, Self);
                return base.Receive(message);
            case Tick:
                ReportEnded(DateTime.UtcNow);
                return true;
            default:
                return base.Receive(message);
        }
    }

    protected override void PostStop()
    {
        _tick?.Cancel();
        ReportEnded(DateTime.MaxValue);
        base.PostStop();
    }

    protected override void Print(LogEvent logEvent)
    {
        if (KindOf(logEvent) is not { } kind)
        {
            base.Print(logEvent);
            return;
        }
        DateTime now = DateTime.UtcNow;
        ReportEnded(now);
        if (!_gate.Admit(kind, now)) return;
        _firstOfKind[kind] = logEvent;
        base.Print(logEvent);
    }

    /// <summary>The kind of a line from Akka.Remote's transport, or null for every other line (written as it is).</summary>
    public static string? KindOf(LogEvent e)
    {
        string? type = e.LogClass?.FullName;
        if (type is null || !type.StartsWith("Akka.Remote.Transport.", StringComparison.Ordinal)) return null;
        string template = e.Message is LogMessage m ? m.Format : e.Message?.ToString() ?? "";
        return $"{e.LogLevel()}|{type}|{template}|{e.Cause?.GetType().FullName}";
    }

    private void ReportEnded(DateTime now)
    {
        foreach ((string kind, long repeats) in _gate.Ended(now))
        {
            if (_firstOfKind.TryGetValue(kind, out LogEvent? first)) base.Print(Summary(first, repeats));
        }
    }

    /// <summary>One line, at the kind's level and from its source, counting the repeats of <paramref name="first"/> not written.</summary>
    public static LogEvent Summary(LogEvent first, long repeats)
    {
        string template = first.Message is LogMessage m ? m.Format : first.Message?.ToString() ?? "";
        string cause = first.Cause is { } c ? $" ({c.GetType().Name}: {FirstLine(c.Message)})" : "";
        string text = $"{repeats} more like \"{template}\"{cause} in the {Window.TotalSeconds:0} s after it, not written one by one";
        return first.LogLevel() switch
        {
            LogLevel.ErrorLevel => new Error(null, first.LogSource, first.LogClass, text),
            LogLevel.WarningLevel => new Warning(first.LogSource, first.LogClass, text),
            LogLevel.InfoLevel => new Info(first.LogSource, first.LogClass, text),
            _ => new Debug(first.LogSource, first.LogClass, text),
        };
    }

    private static string FirstLine(string text)
    {
        int end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end];
    }

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }
}
