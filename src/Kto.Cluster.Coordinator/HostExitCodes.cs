using System.Runtime.InteropServices;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator;

/// <summary>
/// Exit statuses of the coordinator host, so a supervisor (systemd, <c>kto up</c>, a script) can tell a finished run
/// from a failure. Every status but <see cref="Done"/> comes with a one-line reason on stderr.
/// </summary>
public static class HostExitCodes
{
    /// <summary>The run is complete (final checkpoint recorded) or was stopped by an operator (<c>run stop</c>); or a
    /// signal stopped a host that held no unfinished run.</summary>
    public const int Done = 0;

    /// <summary>The run cannot go on as given (e.g. a run config that differs from the one its journal was started with); the reason is printed.</summary>
    public const int RunError = 1;

    /// <summary>A bad command line or host config (nothing started).</summary>
    public const int BadConfig = 2;

    /// <summary>The host left the cluster on an operator's request (<c>kto HOST:PORT cluster leave</c>) while its run was incomplete.</summary>
    public const int Left = 4;

    /// <summary>Ctrl+C (128 + SIGINT) while this host's run was incomplete; starting the host again resumes it.</summary>
    public const int Interrupted = 130;

    /// <summary>SIGTERM (128 + SIGTERM) while this host's run was incomplete; starting the host again resumes it.</summary>
    public const int Terminated = 143;

    /// <summary>The status for a host that left the cluster on request, with the reason printed to stderr.</summary>
    public static int ForLeave(RunState? latest, string runId)
    {
        if (latest?.Spec is not { } spec || latest.Phase is RunPhase.Completed or RunPhase.Stopped) return Done;
        Console.Error.WriteLine($"coordinator host left the cluster on request with run {runId} incomplete ({latest.CommittedSteps}/{spec.TotalSteps} steps committed)");
        return Left;
    }

    /// <summary>The status for a host stopped by <paramref name="signal"/>, given the last run state its run coordinator
    /// persisted (null: this host never held the run coordinator), with the reason printed to stderr.</summary>
    public static int ForSignal(PosixSignal? signal, RunState? latest, string runId)
    {
        if (latest?.Spec is not { } spec || latest.Phase is RunPhase.Completed or RunPhase.Stopped) return Done;
        int code = signal == PosixSignal.SIGINT ? Interrupted : Terminated;
        Console.Error.WriteLine($"coordinator host stopped by {(code == Interrupted ? "SIGINT" : "SIGTERM")} with run {runId} incomplete ({latest.CommittedSteps}/{spec.TotalSteps} steps committed); starting it again resumes the run");
        return code;
    }
}

/// <summary>
/// What the host's run coordinator last persisted and whether the run has ended or was refused; written from the
/// actor, read by the host loop. Writes the run config to <c>output_dir</c> once the journal confirms it is the run's.
/// </summary>
internal sealed class RunWatch(RunSpec? given, Action? writeRunConfig)
{
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> _refused = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile RunState? _latest;
    private int _written;

    /// <summary>The latest state (null until this host's run coordinator recovered).</summary>
    public RunState? Latest => _latest;

    /// <summary>Completes once the run is complete with its final checkpoint, or stopped.</summary>
    public Task Finished => _finished.Task;

    /// <summary>Completes with the reason when the run coordinator refused to drive the run as given.</summary>
    public Task<string> Refused => _refused.Task;

    /// <summary>For the actor's <c>onChanged</c>.</summary>
    public void OnChanged(RunState state)
    {
        _latest = state;
        if (given is not null && state.Spec is { } spec && spec.Differences(given).Count == 0 && Interlocked.Exchange(ref _written, 1) == 0) writeRunConfig?.Invoke();
    }

    /// <summary>For the actor's <c>onFinished</c>.</summary>
    public void OnFinished(RunState state)
    {
        _latest = state;
        _finished.TrySetResult();
    }

    /// <summary>For the actor's <c>onRefused</c>.</summary>
    public void OnRefused(string reason) => _refused.TrySetResult(reason);
}
