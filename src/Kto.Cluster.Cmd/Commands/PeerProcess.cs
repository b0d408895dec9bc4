using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// A second copy of this <c>kto</c> executable, started as a helper for a benchmark between two processes and
/// always cleaned up: killed (with its children) when this object is disposed and it is still running, when this
/// process gets Ctrl+C or SIGTERM, or when it exits. The child's standard input stays open as a lifeline: the peer
/// command exits when it reaches end of file, so even a killed parent leaves no orphan behind. The child's output
/// goes to this process's standard error, prefixed, so standard output keeps only the parent's result.
/// </summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    /// <summary>
    /// 10 s for the peer to finish on its own after the parent's work is done (it only closes its sockets),
    /// before it is killed.
    /// </summary>
    public static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PosixSignalRegistration? _sigterm;

    private PeerProcess(Process process)
    {
        _process = process;
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => _exited.TrySetResult();
        process.OutputDataReceived += (_, e) => Forward(e.Data);
        process.ErrorDataReceived += (_, e) => Forward(e.Data);
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        Console.CancelKeyPress += OnCancelKeyPress;
        if (!OperatingSystem.IsWindows()) _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Kill());
    }

    /// <summary>Completes when the child has exited.</summary>
    public Task Exited => _exited.Task;

    /// <summary>The child's process id.</summary>
    public int Id => _process.Id;

    /// <summary>The child's exit code, once it has exited.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>kto</c> with <paramref name="arguments"/>, the same way this process was started.</summary>
    public static PeerProcess Start(IEnumerable<string> arguments)
    {
        var psi = SelfStartInfo();
        foreach (string a in arguments) psi.ArgumentList.Add(a);
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        var process = new Process { StartInfo = psi };
        if (!process.Start()) throw new InvalidOperationException($"could not start {psi.FileName}");
        var peer = new PeerProcess(process);
        if (process.HasExited) peer._exited.TrySetResult();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return peer;
    }

    /// <summary>
    /// This executable: the apphost itself (<c>kto</c>), or <c>dotnet kto.dll</c> when this process runs under the
    /// <c>dotnet</c> host.
    /// </summary>
    /// <summary>How to start this same kto executable.</summary>
    internal static ProcessStartInfo SelfStartInfo()
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this executable is unknown");
        if (!Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase)) return new ProcessStartInfo(host);
        string entry = Assembly.GetEntryAssembly()?.Location ?? throw new InvalidOperationException("the entry assembly is unknown");
        var psi = new ProcessStartInfo(host);
        psi.ArgumentList.Add(entry);
        return psi;
    }

    /// <summary>Lets the child finish for up to <see cref="ExitGrace"/>, then kills it; always unhooks the handlers.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _exited.Task.WaitAsync(ExitGrace);
        }
        catch (TimeoutException)
        {
            Kill();
        }
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        Console.CancelKeyPress -= OnCancelKeyPress;
        _sigterm?.Dispose();
        try
        {
            _process.WaitForExit();
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    /// <summary>Kills the child and its children now, if it still runs.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    private void OnProcessExit(object? sender, EventArgs e) => Kill();

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e) => Kill();

    private static void Forward(string? line)
    {
        if (line is not null) Console.Error.WriteLine("[peer] " + line);
    }
}
