using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>What <c>kto train</c> and <c>kto sft</c> share: command-line overrides and the closing lines.</summary>
internal static class RunOverrides
{
    public static KtoConfig Apply(KtoConfig c, bool resume, bool overwrite, string? device)
    {
        if (resume && overwrite) throw new ArgumentException("--resume and --overwrite exclude each other");
        if (resume) c = c with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest };
        if (overwrite) c = c with { OverwriteOutputDir = true };
        if (device is not null) c = c with { Device = device };
        return c;
    }

    public static void PrintResult(TrainResult result, KtoConfig c, IEnumerable<string> keys)
    {
        var m = result.LastMetrics;
        Console.WriteLine($"step {result.GlobalStep}: " + string.Join("  ", keys.Where(m.ContainsKey).Select(k => $"{k} {m[k]:0.0000}")));
        Console.WriteLine($"checkpoint: {result.FinalCheckpoint}");
        Console.WriteLine($"metrics:    {Path.Combine(c.OutputDir, MetricsLog.FileName)}");
    }
}

/// <summary>First Ctrl+C: stop after the current step and write a checkpoint. Second: end the process.</summary>
internal sealed class CancelOnCtrlC : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly ConsoleCancelEventHandler _handler;

    private CancelOnCtrlC(ConsoleObserver observer)
    {
        _handler = (_, e) =>
        {
            if (_cts.IsCancellationRequested) return;
            e.Cancel = true;
            _cts.Cancel();
            observer.Warn("stopping after this step and writing a checkpoint (Ctrl+C again to abort)");
        };
        Console.CancelKeyPress += _handler;
    }

    public static CancelOnCtrlC Install(ConsoleObserver observer) => new(observer);

    public CancellationToken Token => _cts.Token;

    public bool IsCancellationRequested => _cts.IsCancellationRequested;

    public void Dispose()
    {
        Console.CancelKeyPress -= _handler;
        _cts.Dispose();
    }
}
