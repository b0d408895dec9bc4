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
/// <param name="Supervise">Restart a coordinator or node process that dies before the run ends, with a bounded back-off
/// (<c>kto up</c>, the demo); off where the caller kills and restarts processes itself (chaos runs, benchmarks).</param>
internal sealed record LocalClusterOptions(string RunConfig, string RunId, int Trainers, string RunDir, int Port = 0, string? Postgres = null, int? Scorers = null,
    bool Supervise = true);

/// <summary>
/// A local cluster on loopback: one coordinator process, N trainer node processes and, for runs that precompute
/// reference log-probs, scorer node processes (the
/// <c>Kto.Cluster.Coordinator</c> and <c>Kto.Cluster.GpuNode</c> programs shipped next to <c>kto</c>), running one
/// run config to its end. Each process's output goes to <c>RUN_DIR/logs/NAME.log</c>; the coordinator's commits
/// drive a progress bar and its cluster events are shown. A process that dies (exits non-zero) before the run ends is started again
/// after a back-off that doubles from <see cref="FirstBackoff"/> up to <see cref="MaxBackoff"/> (reset once it has
/// stayed up for <see cref="StableUptime"/>), and the launcher says so; a process that exits with a configuration
/// error (status 2) or the coordinator exiting with a run error (status 1) is not restarted, and the launcher ends
/// with its status. When the run ends, or on Ctrl+C / SIGTERM, the trainers are asked to stop (SIGTERM), then the
/// coordinator; anything still running after a grace period is killed, so no process outlives the launcher.
/// </summary>
internal sealed class LocalClusterLauncher : IAsyncDisposable
{
    /// <summary>How long processes get to stop after SIGTERM before they are killed.</summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    private static readonly string[] Shown = ["registered at", "downing ", "joining again", "unreachable", "lost", "retrying", "fetching the state", "left (", "is leaving",
        "loading checkpoint", "replayed", "checkpoint after step", "scorer pool", "scorer ", "reference scor", "run started", "coordinator ready", "complete:", "stopped after", "warning", "error"];

    /// <summary>The first restart of a process that died waits this long.</summary>
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);

    /// <summary>Restart back-off doubles up to this.</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>A process that stayed up this long is restarted after <see cref="FirstBackoff"/> again.</summary>
    public static readonly TimeSpan StableUptime = TimeSpan.FromSeconds(60);

    /// <summary>Akka's own chatter that matches <see cref="Shown"/> but tells an operator nothing.</summary>
    private static readonly string[] Hidden = ["Ignoring received gossip", "This may cause failure detection", "Association with remote system", "Marking unreachable node",
        "Leader is removing"];

    private readonly List<Child> _processes = [];
    private readonly ITrainingObserver _observer;
    private readonly TaskCompletionSource<int> _fatal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _supervise;
    private volatile bool _stopping;
    private readonly object _gate = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(TimeSpan At, string Line)> _commits = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private LocalClusterLauncher(ITrainingObserver observer) => _observer = observer;

    /// <summary>The file whose lock makes a launcher the only one on its run directory.</summary>
    public const string LockFile = "launcher.lock";

    private FileStream? _runLock;

    /// <summary>
    /// Takes <c>RUN_DIR/launcher.lock</c> for as long as the launcher lives (an OS lock, so a killed launcher leaves none
    /// behind): a second launcher on the same run directory would overwrite its host configs and logs and start a second
    /// coordinator on its journal.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another launcher holds the run directory.</exception>
    private static FileStream LockRunDir(string runDir)
    {
        Directory.CreateDirectory(runDir);
        string path = Path.Combine(runDir, LockFile);
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"{runDir} is in use by another launcher (kto up, kto chaos or kto demo holds {path}); stop it, or use another --run-dir");
        }
    }

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

    private readonly List<IPEndPoint> _ringEndpoints = [];

    /// <summary>The trainers' gradient-ring endpoints, as they reported them (a restarted trainer adds its new one).</summary>
    public IReadOnlyList<IPEndPoint> RingEndpoints
    {
        get
        {
            lock (_gate) return [.. _ringEndpoints];
        }
    }

    /// <summary>When the launcher started (UTC).</summary>
    public DateTime StartedUtc { get; } = DateTime.UtcNow;

    /// <summary>Whether the coordinator announced the end of the run (complete, or stopped).</summary>
    public bool RunEnded => _finished.Task.IsCompleted;

    /// <summary>Time since the launcher started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>SIGKILLs trainer <paramref name="index"/> (1-based), as a crash would.</summary>
    public void KillTrainer(int index) => Kill($"trainer-{index}");

    /// <summary>SIGKILLs the process named <paramref name="name"/> (<c>coordinator</c>, <c>trainer-N</c>, <c>scorer-N</c>) and waits until it is gone.</summary>
    public void Kill(string name)
    {
        Process p = Get(name).Process;
        try
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    /// <summary>Sends SIGSTOP (<paramref name="frozen"/>) or SIGCONT to the process named <paramref name="name"/>.</summary>
    public void Freeze(string name, bool frozen) => Signal(Get(name).Process, frozen ? "STOP" : "CONT");

    /// <summary>Starts the process named <paramref name="name"/> again with its arguments, once the killed one has exited.</summary>
    /// <exception cref="InvalidOperationException">It is still running 30 s later.</exception>
    public void Restart(string name)
    {
        Child c = Get(name);
        if (!c.Process.WaitForExit(TimeSpan.FromSeconds(30))) throw new InvalidOperationException($"{name} is still running");
        lock (_gate) Launch(c);
    }

    /// <summary>Whether the process named <paramref name="name"/> is running.</summary>
    public bool IsRunning(string name) => !Get(name).Process.HasExited;

    /// <summary>CPU time (user + system) the process <paramref name="name"/> ("coordinator", "trainer-N") has used so far.</summary>
    public TimeSpan CpuTime(string name)
    {
        Process p = Get(name).Process;
        p.Refresh();
        return p.TotalProcessorTime;
    }

    private Child Get(string name) => _processes.FirstOrDefault(p => p.Name == name) ?? throw new ArgumentException($"no process named {name}");

    /// <summary>Starts the coordinator and the trainers.</summary>
    public static LocalClusterLauncher Start(LocalClusterOptions o, ITrainingObserver observer)
    {
        if (o.Trainers < 1) throw new ArgumentException("a cluster needs at least one trainer (--trainers)");
        string runDir = Path.GetFullPath(o.RunDir);
        string hosts = Path.Combine(runDir, "hosts"), logs = Path.Combine(runDir, "logs");
        FileStream runLock = LockRunDir(runDir);
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

        var launcher = new LocalClusterLauncher(observer) { CoordinatorAddress = $"127.0.0.1:{port}", _supervise = o.Supervise, _runLock = runLock };
        try
        {
            launcher.Spawn("coordinator", "Kto.Cluster.Coordinator.dll", logs, "--config", coordinatorConfig, "--run-id", o.RunId,
                "--run-config", Path.GetFullPath(o.RunConfig), "--min-trainers", o.Trainers.ToString(CultureInfo.InvariantCulture), StdinFlag);
            for (int i = 1; i <= o.Trainers; i++)
                launcher.Spawn($"trainer-{i}", "Kto.Cluster.GpuNode.dll", logs, "node", "--config", nodeConfig, "--node-id", $"t{i}", "--data-endpoint", "127.0.0.1:0", StdinFlag);
            for (int i = 1; i <= scorers; i++)
                launcher.Spawn($"scorer-{i}", "Kto.Cluster.GpuNode.dll", logs, "node", "--config", scorerConfig, "--node-id", $"s{i}", StdinFlag);
        }
        catch
        {
            launcher.KillAll();
            runLock.Dispose();
            throw;
        }
        observer.Info($"local cluster: coordinator at {launcher.CoordinatorAddress}, {o.Trainers} trainer(s){(scorers > 0 ? $", {scorers} scorer(s)" : "")}; logs in {logs}");
        return launcher;
    }

    /// <summary>
    /// Waits for the run to end (complete with its final checkpoint, or stopped), then stops the trainers (which the
    /// coordinator lets go at once) and the coordinator; returns 0, or the status of a process that ended the launch
    /// (one that exited with an error no restart can fix, or — without supervision — the coordinator exiting first).
    /// </summary>
    public async Task<int> WaitAsync(CancellationToken cancel)
    {
        Task exited = _supervise ? Task.Delay(Timeout.Infinite, CancellationToken.None) : _processes[0].Process.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAny(exited, _finished.Task, _fatal.Task, Task.Delay(Timeout.Infinite, cancel)).ConfigureAwait(false);
        bool finished = _finished.Task.IsCompleted;
        _stopping = true;
        if (cancel.IsCancellationRequested && !finished)
            _observer.Info("stopping the local cluster (the journal and checkpoints are kept; the same command resumes the run)");
        else if (!finished && !_fatal.Task.IsCompleted) _observer.Warn($"the coordinator exited with code {_processes[0].Process.ExitCode} before the run ended");
        await StopAsync();
        if (finished) return 0;
        if (cancel.IsCancellationRequested) return 130;
        return _fatal.Task.IsCompleted ? _fatal.Task.Result : _processes[0].Process.ExitCode;
    }

    /// <summary>Restarts <paramref name="c"/> after it died, unless the launch is ending or its status says a restart cannot help.</summary>
    private async Task SuperviseAsync(Child c, Process process)
    {
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        if (_stopping || _finished.Task.IsCompleted || !_supervise || !ReferenceEquals(c.Process, process)) return;
        int code = process.ExitCode;
        bool coordinator = c.Name == "coordinator";
        if (code == 0) return; // an intended end: a drained or departed node, a host that finished
        if (code == 2 || (coordinator && code == 1))
        {
            _observer.Warn($"{c.Name} exited with code {code} (see {c.LogPath}); not restarting it");
            _fatal.TrySetResult(code);
            return;
        }
        TimeSpan uptime = DateTime.UtcNow - c.StartedAt;
        c.Backoff = uptime >= StableUptime ? FirstBackoff : c.Backoff == TimeSpan.Zero ? FirstBackoff : TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, c.Backoff.Ticks * 2));
        c.Restarts++;
        _observer.Warn($"{c.Name} exited with code {code} after {uptime.TotalSeconds:0.0} s; restarting it in {c.Backoff.TotalSeconds:0} s (restart {c.Restarts})");
        await Task.Delay(c.Backoff).ConfigureAwait(false);
        if (_stopping || _finished.Task.IsCompleted) return;
        lock (_gate) Launch(c);
    }

    /// <summary>SIGTERM to the trainers, then to the coordinator; kills what is left after <see cref="StopGrace"/>.</summary>
    private async Task StopAsync()
    {
        _stopping = true;
        foreach (Child c in _processes) Signal(c.Process, "CONT"); // a frozen process cannot stop
        var trainers = _processes.Skip(1).Select(p => p.Process).Where(p => !p.HasExited).ToList();
        foreach (Process p in trainers) Signal(p, "TERM");
        await WaitAll(trainers, StopGrace);
        Process coordinator = _processes[0].Process;
        if (!coordinator.HasExited)
        {
            Signal(coordinator, "TERM");
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

    private static void Signal(Process p, string signal)
    {
        try
        {
            if (p.HasExited) return;
            using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", p.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
            kill?.WaitForExit();
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // already gone
        }
    }

    private void KillAll()
    {
        foreach (Process p in _processes.Select(c => c.Process))
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

    /// <summary>
    /// Every child reads its stdin, a pipe from this launcher, and stops gracefully when it closes: so a launcher killed
    /// with SIGKILL (which it cannot catch) still takes its cluster down with it.
    /// </summary>
    public const string StdinFlag = Kto.Cluster.Core.StdinWatch.Flag;

    private void Spawn(string name, string dll, string logs, params string[] args)
    {
        string path = Path.Combine(AppContext.BaseDirectory, dll);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: build the solution (dotnet build Kto.Cluster.sln) so kto ships its cluster hosts", path);
        string logPath = Path.Combine(logs, name + ".log");
        var child = new Child(name, [path, .. args], logPath, new StreamWriter(logPath, append: true) { AutoFlush = true });
        _processes.Add(child);
        Launch(child);
    }

    /// <summary>Starts (or starts again) <paramref name="c"/>'s process, with its output going to its log.</summary>
    private void Launch(Child c)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (string a in c.Args) psi.ArgumentList.Add(a);
        var process = new Process { StartInfo = psi };
        bool isCoordinator = c.Name == "coordinator";
        process.OutputDataReceived += (_, e) => OnLine(c.Log, e.Data, isCoordinator);
        process.ErrorDataReceived += (_, e) => OnLine(c.Log, e.Data, isCoordinator);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Process? previous = c.Process;
        c.Process = process;
        c.StartedAt = DateTime.UtcNow;
        previous?.Dispose();
        _ = SuperviseAsync(c, process);
    }

    /// <summary>A process the launcher owns: how to start it, its log, and its restart history.</summary>
    private sealed class Child(string name, string[] args, string logPath, StreamWriter log)
    {
        public string Name { get; } = name;
        public string[] Args { get; } = args;
        public string LogPath { get; } = logPath;
        public StreamWriter Log { get; } = log;
        public Process Process { get; set; } = null!;
        public DateTime StartedAt { get; set; }
        public TimeSpan Backoff { get; set; }
        public int Restarts { get; set; }
    }

    private bool _logFailing;

    private void OnLine(StreamWriter log, string? line, bool coordinator)
    {
        if (line is null) return;
        lock (_gate)
        {
            try
            {
                log.WriteLine(line);
                _logFailing = false;
            }
            catch (IOException e)
            {
                // A full disk under RUN_DIR/logs must not take the launcher (and with it the cluster) down.
                if (!_logFailing) _observer.Warn($"writing a log under the run directory failed ({e.Message}); lines are lost until it works again");
                _logFailing = true;
            }
            if (!coordinator)
            {
                // "trainer t1: ring endpoint 127.0.0.1:40123"
                if (line.StartsWith("trainer ", StringComparison.Ordinal) && line.Split(": ring endpoint ") is [_, var endpoint] && IPEndPoint.TryParse(endpoint.Trim(), out IPEndPoint? ring))
                    _ringEndpoints.Add(ring);
                return;
            }
            if (line.StartsWith("step ", StringComparison.Ordinal) && line.Contains(" committed:", StringComparison.Ordinal))
            {
                _commits.Add((_clock.Elapsed, line));
                ReportProgress(line);
                return;
            }
            if (line.StartsWith("run ", StringComparison.Ordinal) && (line.Contains(" complete: ", StringComparison.Ordinal) || line.Contains(" stopped after ", StringComparison.Ordinal)))
                _finished.TrySetResult();
            if (line.StartsWith("[DEBUG]", StringComparison.Ordinal) || !Shown.Any(s => line.Contains(s, StringComparison.Ordinal)) || Hidden.Any(s => line.Contains(s, StringComparison.Ordinal))) return;
            string text = line.StartsWith('[') && line.LastIndexOf("] ", StringComparison.Ordinal) is int end and > 0 ? line[(end + 2)..] : line;
            if (string.IsNullOrWhiteSpace(text)) return;
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
        foreach (Child c in _processes)
        {
            c.Process.WaitForExit(); // drains the output handlers
            c.Process.Dispose();
            await c.Log.DisposeAsync();
        }
        if (_runLock is not null) await _runLock.DisposeAsync();
    }
}
