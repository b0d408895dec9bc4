using System.Diagnostics;
using System.Globalization;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Terminal;

/// <summary>
/// Renders progress on stderr: a redrawn bar with ETA on a terminal, or a plain line every few seconds when
/// output is redirected (logs stay readable). Info and warnings go to stderr so stdout carries results only.
/// </summary>
internal sealed class ConsoleObserver : ITrainingObserver
{
    /// <summary>Seconds between progress lines when stderr is not a terminal.</summary>
    private const double RedirectedIntervalSeconds = 5;

    /// <summary>Width of the bar in characters.</summary>
    private const int BarWidth = 28;

    private readonly bool _interactive = !Console.IsErrorRedirected;
    private readonly Stopwatch _phaseClock = new();
    private readonly Stopwatch _lastPrint = Stopwatch.StartNew();
    private string _phase = "";
    private long _phaseStartDone;
    private bool _barShown;

    public void Info(string message) => Line($"{message}");

    public void Warn(string message) => Line($"warning: {message}");

    public void Progress(ProgressUpdate u)
    {
        if (u.Phase != _phase)
        {
            _phase = u.Phase;
            _phaseClock.Restart();
            _phaseStartDone = u.Done - 1;
        }
        bool last = u.Done >= u.Total;
        if (!_interactive && !last && _lastPrint.Elapsed.TotalSeconds < RedirectedIntervalSeconds) return;
        if (_interactive && !last && _lastPrint.Elapsed.TotalMilliseconds < 100) return;
        _lastPrint.Restart();

        double frac = u.Total <= 0 ? 1 : Math.Clamp((double)u.Done / u.Total, 0, 1);
        double rate = (u.Done - _phaseStartDone) / Math.Max(1e-9, _phaseClock.Elapsed.TotalSeconds);
        TimeSpan eta = TimeSpan.FromSeconds(rate > 0 ? (u.Total - u.Done) / rate : 0);
        int filled = (int)(frac * BarWidth);
        string bar = new string('#', filled) + new string('-', BarWidth - filled);
        string figures = string.Join(" ", new[] { "loss", "kl", "rewards/margins" }
            .Where(u.Figures.ContainsKey).Select(k => string.Create(CultureInfo.InvariantCulture, $"{k} {u.Figures[k]:0.0000}")));
        string text = string.Create(CultureInfo.InvariantCulture,
            $"{u.Phase,-10} [{bar}] {u.Done}/{u.Total} {frac,4:P0} {figures} eta {eta:hh\\:mm\\:ss}");
        if (_interactive)
        {
            Console.Error.Write("\r" + text.PadRight(Math.Max(text.Length, SafeWidth() - 1))[..Math.Max(1, Math.Min(text.Length, SafeWidth() - 1))]);
            _barShown = true;
            if (last) Done();
        }
        else
        {
            Console.Error.WriteLine(text);
        }
    }

    /// <summary>Ends the bar's line.</summary>
    public void Done()
    {
        if (_barShown) Console.Error.WriteLine();
        _barShown = false;
    }

    private void Line(string text)
    {
        Done();
        Console.Error.WriteLine(text);
    }

    private static int SafeWidth()
    {
        try
        {
            return Console.WindowWidth > 20 ? Console.WindowWidth : 120;
        }
        catch (IOException)
        {
            return 120;
        }
    }
}
