using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Cluster;

/// <summary>What <see cref="LocalClusterLauncher"/> starts.</summary>
/// <param name="RunConfig">The run config (kto train's keys).</param>
/// <param name="RunId">Names the run and its journal; the same id resumes the run.</param>
/// <param name="Trainers">Trainer node processes.</param>
/// <param name="RunDir">Host configs, logs and the SQLite journal go here.</param>
/// <param name="Port">The coordinator's Akka port (0 = a free one).</param>
/// <param name="Postgres">A Npgsql connection string for the journal instead of SQLite.</param>
/// <param name="Scorers">Reference scorer node processes (for runs with precompute_ref_log_probs; null = 1 for such
/// runs, 0 otherwise).</param>
internal sealed record LocalClusterOptions(string RunConfig, string RunId, int Trainers, string RunDir, int Port = 0, string? Postgres = null, int? Scorers = null);

/// <summary>
/// A local cluster on loopback: one coordinator process, N trainer node processes and, for runs that precompute
/// reference log-probs, scorer node processes (the
/// <c>Kto.Cluster.Coordinator</c> and <c>Kto.Cluster.GpuNode</c> programs shipped next to <c>kto</c>), running one
/// run config to its end. Each process's output goes to <c>RUN_DIR/logs/NAME.log</c>; the coordinator's commits
/// drive a progress bar and its cluster events are shown. When the run ends, or on Ctrl+C / SIGTERM, the trainers are
/// asked to stop (SIGTERM), then the coordinator; anything still running after a grace period is killed, so no
/// process outlives the launcher.
/// </summary>
internal sealed class LocalClusterLauncher : IAsyncDisposable
{
    /// <summary>How long processes get to stop after SIGTERM before they are killed.</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    private static readonly string[] Shown = ["registered at", "unreachable", "lost", "retrying", "fetching the state", "left (", "is leaving",
        "loading checkpoint", "replayed", "checkpoint after step", "scorer pool", "scorer ", "reference scor", "run started", "coordinator ready", "complete:", "stopped after", "warning", "error"];

    private readonly List<(string Name, Process Process, StreamWriter Log)> _processes = [];
    private readonly ITrainingObserver _observer;
    private readonly object _gate = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(TimeSpan At, string Line)> _commits = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private LocalClusterLauncher(ITrainingObserver observer) => _observer = observer;

    /// <summary>The coordinator's address, for <c>kto HOST:PORT …</c> commands.</summary>
    public string CoordinatorAddress { get; private set; } = "";

    /// <summary>The coordinator's commit lines so far, with the time (since start) each was read.</summary>
    public IReadOnlyList<(TimeSpan At, string Line)> Commits
    {
        get
        {
            lock (_gate) return [.. _commits];
        }
    }

    /// <summary>Time since the launcher started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>SIGKILLs trainer <paramref name="index"/> (1-based), as a crash would.</summary>
    public void KillTrainer(int index) => _processes[index].Process.Kill(entireProcessTree: true);

    /// <summary>Starts the coordinator and the trainers.</summary>
    public static LocalClusterLauncher Start(LocalClusterOptions o, ITrainingObserver observer)
    {
        if (o.Trainers < 1) throw new ArgumentException("a cluster needs at least one trainer (--trainers)");
        string runDir = Path.GetFullPath(o.RunDir);
        string hosts = Path.Combine(runDir, "hosts"), logs = Path.Combine(runDir, "logs");
        Directory.CreateDirectory(hosts);
        Directory.CreateDirectory(logs);
        int port = o.Port == 0 ? FreePort() : o.Port;
        string seeds = JsonSerializer.Serialize(new[] { $"akka.tcp://kto@127.0.0.1:{port}" });
        string journal = o.Postgres is null ? "" : $", \"journal\": {{\"provider\": \"postgres\", \"connection_string\": {JsonSerializer.Serialize(o.Postgres)}}}";
        string coordinatorConfig = Path.Combine(hosts, "coordinator.json"), nodeConfig = Path.Combine(hosts, "node.json");
        File.WriteAllText(coordinatorConfig, $$"""{"hostname": "127.0.0.1", "port": {{port}}, "seed_nodes": {{seeds}}, "roles": ["coordinator"], "run_dir": ".."{{journal}}}""");
        File.WriteAllText(nodeConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["trainer"]}""");
        string scorerConfig = Path.Combine(hosts, "scorer.json");
        File.WriteAllText(scorerConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["scorer"]}""");
        int scorers = o.Scorers ?? (Kto.Domain.Options.KtoConfigReader.Load(o.RunConfig).PrecomputeRefLogProbs ? 1 : 0);
        if (scorers < 0) throw new ArgumentException("--scorers cannot be negative");

        var launcher = new LocalClusterLauncher(observer) { CoordinatorAddress = $"127.0.0.1:{port}" };
        try
        {
            launcher.Spawn("coordinator", "Kto.Cluster.Coordinator.dll", logs, "--config", coordinatorConfig, "--run-id", o.RunId,
                "--run-config", Path.GetFullPath(o.RunConfig), "--min-trainers", o.Trainers.ToString(CultureInfo.InvariantCulture));
            for (int i = 1; i <= o.Trainers; i++)
                launcher.Spawn($"trainer-{i}", "Kto.Cluster.GpuNode.dll", logs, "node", "--config", nodeConfig, "--node-id", $"t{i}", "--data-endpoint", "127.0.0.1:0");
            for (int i = 1; i <= scorers; i++)
                launcher.Spawn($"scorer-{i}", "Kto.Cluster.GpuNode.dll", logs, "node", "--config", scorerConfig, "--node-id", $"s{i}");
        }
        catch
        {
            launcher.KillAll();
            throw;
        }
        observer.Info($"local cluster: coordinator at {launcher.CoordinatorAddress}, {o.Trainers} trainer(s){(scorers > 0 ? $", {scorers} scorer(s)" : "")}; logs in {logs}");
        return launcher;
    }

    /// <summary>
    /// Waits for the run to end (complete with its final checkpoint, or stopped), then stops the trainers (which the
    /// coordinator lets go at once) and the coordinator; returns 0, or the coordinator's exit code when it ended first.
    /// </summary>
    public async Task<int> WaitAsync(CancellationToken cancel)
    {
        Process coordinator = _processes[0].Process;
        Task exited = coordinator.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAny(exited, _finished.Task, Task.Delay(Timeout.Infinite, cancel)).ConfigureAwait(false);
        bool finished = _finished.Task.IsCompleted;
        if (cancel.IsCancellationRequested && !finished)
            _observer.Info("stopping the local cluster (the journal and checkpoints are kept; the same command resumes the run)");
        else if (!finished) _observer.Warn($"the coordinator exited with code {coordinator.ExitCode} before the run ended");
        await StopAsync();
        return finished ? 0 : cancel.IsCancellationRequested ? 130 : coordinator.ExitCode;
    }

    /// <summary>SIGTERM to the trainers, then to the coordinator; kills what is left after <see cref="StopGrace"/>.</summary>
    private async Task StopAsync()
    {
        var trainers = _processes.Skip(1).Select(p => p.Process).Where(p => !p.HasExited).ToList();
        foreach (Process p in trainers) Signal(p);
        await WaitAll(trainers, StopGrace);
        Process coordinator = _processes[0].Process;
        if (!coordinator.HasExited)
        {
            Signal(coordinator);
            await WaitAll([coordinator], StopGrace);
        }
        KillAll();
    }

    private static async Task WaitAll(IEnumerable<Process> processes, TimeSpan grace)
    {
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await Task.WhenAll(processes.Select(p => p.WaitForExitAsync(timeout.Token)));
        }
        catch (OperationCanceledException)
        {
            // whatever is still running is killed next
        }
    }

    private static void Signal(Process p)
    {
        try
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
            kill?.WaitForExit();
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }

    private void KillAll()
    {
        foreach (var (_, p, _) in _processes)
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }
    }

    private void Spawn(string name, string dll, string logs, params string[] args)
    {
        string path = Path.Combine(AppContext.BaseDirectory, dll);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: build the solution (dotnet build Kto.Cluster.sln) so kto ships its cluster hosts", path);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add(path);
        foreach (string a in args) psi.ArgumentList.Add(a);
        var log = new StreamWriter(Path.Combine(logs, name + ".log"), append: true) { AutoFlush = true };
        var process = new Process { StartInfo = psi };
        bool isCoordinator = _processes.Count == 0;
        process.OutputDataReceived += (_, e) => OnLine(log, e.Data, isCoordinator);
        process.ErrorDataReceived += (_, e) => OnLine(log, e.Data, isCoordinator);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add((name, process, log));
    }

    private void OnLine(StreamWriter log, string? line, bool coordinator)
    {
        if (line is null) return;
        lock (_gate)
        {
            log.WriteLine(line);
            if (!coordinator) return;
            if (line.StartsWith("step ", StringComparison.Ordinal) && line.Contains(" committed:", StringComparison.Ordinal))
            {
                _commits.Add((_clock.Elapsed, line));
                ReportProgress(line);
                return;
            }
            if (line.StartsWith("run ", StringComparison.Ordinal) && (line.Contains(" complete: ", StringComparison.Ordinal) || line.Contains(" stopped after ", StringComparison.Ordinal)))
                _finished.TrySetResult();
            if (line.StartsWith("[DEBUG]", StringComparison.Ordinal) || !Shown.Any(s => line.Contains(s, StringComparison.Ordinal))) return;
            string text = line.StartsWith('[') && line.LastIndexOf("] ", StringComparison.Ordinal) is int end and > 0 ? line[(end + 2)..] : line;
            if (line.StartsWith("[WARNING]", StringComparison.Ordinal) || line.StartsWith("[ERROR]", StringComparison.Ordinal)) _observer.Warn(text);
            else _observer.Info(text);
        }
    }

    /// <summary>"step 12/40 committed: loss 0.49 grad_norm … members t1,t2 …" → the progress bar.</summary>
    private void ReportProgress(string line)
    {
        string[] words = line.Split(' ');
        string[] fraction = words[1].Split('/');
        if (!long.TryParse(fraction[0], CultureInfo.InvariantCulture, out long done) || !long.TryParse(fraction[1], CultureInfo.InvariantCulture, out long total)) return;
        var figures = new Dictionary<string, double>();
        int loss = Array.IndexOf(words, "loss");
        if (loss > 0 && double.TryParse(words[loss + 1], CultureInfo.InvariantCulture, out double l)) figures["loss"] = l;
        _observer.Progress(new ProgressUpdate("cluster", done, total, figures));
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_processes.Any(p => !p.Process.HasExited)) await StopAsync();
        foreach (var (_, p, log) in _processes)
        {
            p.WaitForExit(); // drains the output handlers
            p.Dispose();
            await log.DisposeAsync();
        }
    }
}
