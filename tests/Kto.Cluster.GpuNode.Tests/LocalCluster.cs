using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Actor;
using Kto.Cluster.Coordinator;
using Kto.Cluster.Core;
using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using Kto.Cluster.Tests.Rig;
using TorchSharp;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// A coordinator process and trainer node processes on loopback, on a tiny run written into a temporary directory.
/// Every process's output is collected line by line; tests wait for lines, kill processes with SIGKILL and start
/// new ones. Disposing kills whatever still runs.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<Proc> _all = [];
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public LocalCluster(Xunit.Abstractions.ITestOutputHelper output, int maxSteps = 24, string? postgres = null, double learningRate = 3e-4,
        bool precompute = false, int examples = 30, int coordinators = 1, string arch = "gpt2", bool evaluate = false, bool lora = false, bool fullDeterminism = false, NetRig? rig = null)
    {
        _output = output;
        Rig = rig;
        Dir = Directory.CreateTempSubdirectory("kto-cluster-").FullName;
        // Boxes of a rig run as other users (umask 0): they write the run's folders next to the test's files.
        if (rig is not null && !OperatingSystem.IsWindows()) File.SetUnixFileMode(Dir, (UnixFileMode)0x1FF);
        RunId = "run-" + Guid.NewGuid().ToString("N")[..8];
        Ports = [.. Enumerable.Range(0, coordinators).Select(_ => FreePort())];
        Port = Ports[0];
        string seeds = JsonSerializer.Serialize(Ports.Select(p => $"akka.tcp://kto@127.0.0.1:{p}"));
        string journal = postgres is null ? "" : $", \"journal\": {{\"provider\": \"postgres\", \"connection_string\": {JsonSerializer.Serialize(postgres)}}}";
        for (int i = 0; i < coordinators; i++)
            File.WriteAllText(CoordinatorConfigAt(i), $$"""{"hostname": "127.0.0.1", "port": {{Ports[i]}}, "seed_nodes": {{seeds}}, "roles": ["coordinator"], "run_dir": "run"{{journal}}}""");
        File.WriteAllText(NodeConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["trainer"]}""");
        File.WriteAllText(ScorerConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["scorer"]}""");

        using (var g = new torch.Generator(3))
        using (CausalLm m = TestModel(arch).CreateModel(g))
            ModelCheckpoint.Save(m, Path.Combine(Dir, "model"));
        var rng = new Random(17);
        File.WriteAllLines(Path.Combine(Dir, "data.jsonl"), Enumerable.Range(0, examples).Select(_ =>
        {
            int a = rng.Next(1, 30), b = rng.Next(1, 30);
            bool good = rng.NextDouble() < 0.4;
            return JsonSerializer.Serialize(new { prompt = $"{a}+{b}=", completion = (good ? a + b : a + b + rng.Next(1, 9)).ToString(), label = good });
        }));
        if (evaluate)
            File.WriteAllLines(Path.Combine(Dir, "eval.jsonl"), Enumerable.Range(0, 10).Select(i =>
                JsonSerializer.Serialize(new { prompt = $"{i}+{i + 3}=", completion = (i % 4 == 0 ? 2 * i + 4 : 2 * i + 3).ToString(System.Globalization.CultureInfo.InvariantCulture), label = i % 4 != 0 })));
        string evalKeys = evaluate ? "\"eval_dataset_path\": \"eval.jsonl\", \"eval_strategy\": \"steps\", \"eval_steps\": 4, \"per_device_eval_batch_size\": 4, " : "";
        if (fullDeterminism) evalKeys += "\"full_determinism\": true, \"determinism_slices\": 4, ";
        if (lora) evalKeys += "\"use_peft\": true, \"lora_r\": 4, \"lora_alpha\": 8, \"lora_dropout\": 0, \"lora_target_modules\": \"all-linear\", ";
        File.WriteAllText(RunConfig, $$"""
            {{{evalKeys}}"model_name_or_path": "model", "dataset_path": "data.jsonl", "output_dir": "out",
             "learning_rate": {{learningRate.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}}, "lr_scheduler_type": "cosine", "warmup_steps": 2, "per_device_train_batch_size": 6,
             "gradient_accumulation_steps": 2, "max_steps": {{maxSteps}}, "max_length": 16, "max_prompt_length": 8,
             "logging_steps": 4, "save_steps": 8, "num_threads": 1, "seed": 7, "precompute_ref_log_probs": {{(precompute ? "true" : "false")}}}
            """);
        MaxSteps = maxSteps;
    }

    /// <summary>The run's tiny model: GPT-2, or Qwen3 (grouped-query attention, per-head q/k norms, untied head).</summary>
    private static LmConfig TestModel(string arch) => arch switch
    {
        "gpt2" => new GptConfig(257, 24, 16, 1, 2, Tokenizer: "byte"),
        "qwen3" => new DecoderConfig("qwen3", 257, 16, 32, 1, 4, 2, 8, 1e-6, 1000000, null,
            QkvBias: false, OProjBias: false, MlpBias: false, QkNorm: true, TieWordEmbeddings: false, 24, null, null, 256) { Tokenizer = "byte" },
        _ => throw new ArgumentException($"no test model for {arch}", nameof(arch)),
    };

    public string Dir { get; }

    /// <summary>The network rig every process runs in (each as its own box), or null for the host's loopback.</summary>
    public NetRig? Rig { get; }
    public string RunId { get; }
    public int Port { get; }
    /// <summary>The coordinator hosts' Akka ports (the first is <see cref="Port"/>); every host config lists them all as seeds.</summary>
    public int[] Ports { get; }
    public int MaxSteps { get; }
    public string CoordinatorConfig => CoordinatorConfigAt(0);
    public string CoordinatorConfigAt(int index) => Path.Combine(Dir, index == 0 ? "coordinator.json" : $"coordinator-{index}.json");
    public string NodeConfig => Path.Combine(Dir, "node.json");
    public string ScorerConfig => Path.Combine(Dir, "scorer.json");
    public string RunConfig => Path.Combine(Dir, "run.json");
    public string OutputDir => Path.Combine(Dir, "out");

    /// <summary>A hang fails the test rather than blocking the suite.</summary>
    public CancellationToken Guard { get; } = new CancellationTokenSource(TimeSpan.FromMinutes(6)).Token;

    public Proc StartCoordinator(params string[] extra) => StartCoordinatorAt(0, extra);

    public Proc StartCoordinatorAt(int index, params string[] extra) => Start(index == 0 ? "coordinator" : $"coordinator-{index}", "Kto.Cluster.Coordinator.dll",
        ["--config", CoordinatorConfigAt(index), "--run-id", RunId, "--run-config", RunConfig, "--exit-when-done", .. extra]);

    public Proc StartTrainer(string id) => Start(id, "Kto.Cluster.GpuNode.dll", "node", "--config", NodeConfig, "--trainer-id", id, "--data-endpoint", "127.0.0.1:0");

    public Proc StartScorer(string id) => Start(id, "Kto.Cluster.GpuNode.dll", "node", "--config", ScorerConfig, "--node-id", id);

    public Proc Start(string name, string dll, params string[] args)
    {
        string[] all = [Path.Combine(AppContext.BaseDirectory, dll), .. args];
        ProcessStartInfo psi = Rig?.Wrap(BoxOf(name), "dotnet", all) ?? new ProcessStartInfo("dotnet", all) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.WorkingDirectory = Dir;
        if (Rig is not null) psi.Environment["HOME"] = Dir;
        var p = new Proc(name, Process.Start(psi)!);
        _all.Add(p);
        return p;
    }

    /// <summary>
    /// The rig box a process name runs as: 1, 2, … in the order names are first started (a restarted process keeps
    /// its box, as a restarted service keeps its machine).
    /// </summary>
    public int BoxOf(string name)
    {
        lock (_boxes)
        {
            if (!_boxes.TryGetValue(name, out int box)) _boxes[name] = box = _boxes.Count + 1;
            return box;
        }
    }

    private readonly Dictionary<string, int> _boxes = new(StringComparer.Ordinal);

    /// <summary>Runs <c>kto 127.0.0.1:PORT ARGS</c> against the first coordinator host (inside the rig, if any, as no box).</summary>
    public string Tool(params string[] args) => KtoTool.Run(Port, Rig, args);

    /// <summary>
    /// Sets the run to pause once <paramref name="at"/> steps are committed (<c>run pause --at</c>): steps of these small
    /// runs take milliseconds, so a pause sent after a commit was seen may come after the run's end.
    /// </summary>
    /// <returns><paramref name="at"/>.</returns>
    public int PauseAt(int at, params string[] toolOptions)
    {
        string said = Tool([.. toolOptions, "run", "pause", "--at", at.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Xunit.Assert.Contains($"will pause once {at} steps are committed", said);
        return at;
    }

    /// <summary>Sets a paused run to pause again once <paramref name="more"/> further steps are committed.</summary>
    /// <returns>The committed-step count it will pause at.</returns>
    public int PauseAfter(int more)
    {
        string status = Tool("run", "status");
        var m = System.Text.RegularExpressions.Regex.Match(status, @": paused, (\d+)/\d+ steps committed");
        Xunit.Assert.True(m.Success, $"not paused: {status}");
        return PauseAt(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + more);
    }

    /// <summary>Waits until <paramref name="coordinator"/> says the run paused at the point <see cref="PauseAt"/> set.</summary>
    public Task<string> PausedAt(Proc coordinator, int at) => coordinator.WaitFor($"run paused at {at} committed steps, as run pause --at asked", Guard);

    /// <summary>The processes started so far, in order.</summary>
    public IReadOnlyList<Proc> Processes() => [.. _all];

    /// <summary>Every line every process printed so far.</summary>
    public IEnumerable<string> AllLines() => _all.SelectMany(p => p.Lines);

    /// <summary>The weights of the same config trained by one process (kto train's loop).</summary>
    public Dictionary<string, float[]> SingleProcessWeights()
    {
        KtoConfig c = KtoConfigReader.Load(RunConfig) with { OutputDir = Path.Combine(Dir, "single") };
        using (TrainingSetup setup = TrainingSetup.Prepare(c, NullObserver.Instance))
            new KtoTrainer(setup, NullObserver.Instance).Run();
        return Weights(TrainingCheckpoint.Latest(c.OutputDir)!);
    }

    /// <summary>The final checkpoint the cluster wrote.</summary>
    public Dictionary<string, float[]> ClusterWeights()
    {
        string dir = Path.Combine(OutputDir, TrainingCheckpoint.Prefix + MaxSteps);
        TrainingCheckpoint.ReadVerified(dir);
        return Weights(dir);
    }

    public static Dictionary<string, float[]> Weights(string dir) => WeightDistance.ReadWeights(dir);

    public static double RelativeL2(Dictionary<string, float[]> a, Dictionary<string, float[]> b) => WeightDistance.RelativeL2(a, b);

    /// <summary>The run's journal, read back through Akka.Persistence.Query.</summary>
    public Task<IReadOnlyList<IRunEvent>> JournalAsync(string? postgres = null) => ReadJournal(postgres, system => JournalReader.ReadAsync(system, RunId, Guard));

    /// <summary>The scorer pool's journal of this run's dataset and reference.</summary>
    public Task<IReadOnlyList<ScoresStored>> ScoreJournalAsync(RunSpec spec, string? postgres = null)
        => ReadJournal(postgres, system => JournalReader.ReadScoresAsync(system, spec.DatasetFingerprint, spec.ReferenceHash!, Guard));

    /// <summary>The run's spec as the coordinator computes it.</summary>
    public RunSpec Spec() => RunSpec.FromConfig(RunId, KtoConfigReader.Load(RunConfig), NullObserver.Instance);

    private async Task<T> ReadJournal<T>(string? postgres, Func<ActorSystem, Task<T>> read)
    {
        var hocon = postgres is null
            ? PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(Dir, "run", PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider)
            : PersistenceConfig.Hocon(postgres, PersistenceConfig.PostgresProvider);
        using ActorSystem system = ActorSystem.Create("kto-audit", hocon);
        try
        {
            return await read(system);
        }
        finally
        {
            await system.Terminate();
        }
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (Proc p in _all) p.Kill();
        foreach (Proc p in _all)
        {
            _output.WriteLine($"===== {p.Name} (exit {(p.Process.HasExited ? p.Process.ExitCode.ToString() : "running")}) =====");
            foreach (string line in p.Lines.Where(Interesting)) _output.WriteLine(line.Length > 300 ? line[..300] : line);
            p.Process.Dispose();
        }
        await Task.Yield();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // a process may still be letting go of a file; the temp folder is cleaned by the OS
        }
    }

    private static bool Interesting(string line) =>
        !line.StartsWith("[DEBUG]", StringComparison.Ordinal) && !line.Contains("ClusterSingletonProxy", StringComparison.Ordinal) && line.Trim().Length > 0;

    /// <summary>A started process and the lines it printed so far (stdout and stderr).</summary>
    public sealed class Proc
    {
        private readonly ConcurrentQueue<string> _lines = new();
        private readonly SemaphoreSlim _signal = new(0);

        public Proc(string name, Process process)
        {
            Name = name;
            Process = process;
            _pumps = Task.WhenAll(Pump(process.StandardOutput), Pump(process.StandardError));
        }

        /// <summary>Ends when both output streams are read to their end (the process exited and its pipes closed).</summary>
        private readonly Task _pumps;

        public string Name { get; }
        public Process Process { get; }
        public IReadOnlyCollection<string> Lines => _lines;

        private async Task Pump(StreamReader reader)
        {
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null)
            {
                _lines.Enqueue(line);
                _signal.Release();
            }
            _signal.Release();
        }

        /// <summary>Waits for a line (printed at any time, before or after the call) that satisfies <paramref name="match"/>.</summary>
        public async Task<string> WaitFor(Func<string, bool> match, CancellationToken guard, string what)
        {
            while (true)
            {
                string? hit = _lines.FirstOrDefault(match);
                if (hit is not null) return hit;
                if (Process.HasExited && _signal.CurrentCount == 0)
                {
                    await Task.Delay(200, CancellationToken.None);
                    hit = _lines.FirstOrDefault(match);
                    if (hit is not null) return hit;
                    throw new InvalidOperationException($"{Name} exited ({Process.ExitCode}) without printing {what}; last lines:\n{string.Join("\n", _lines.Where(Interesting).TakeLast(30))}");
                }
                try
                {
                    await _signal.WaitAsync(TimeSpan.FromMilliseconds(500), guard);
                }
                catch (OperationCanceledException)
                {
                    throw new TimeoutException($"{Name}: gave up waiting for {what}; last lines:\n{string.Join("\n", _lines.Where(Interesting).TakeLast(30))}");
                }
            }
        }

        public Task<string> WaitFor(string fragment, CancellationToken guard) => WaitFor(l => l.Contains(fragment, StringComparison.Ordinal), guard, $"\"{fragment}\"");

        /// <summary>The committed steps a coordinator found in its journal when it became ready.</summary>
    public static int CommittedAtReady(string readyLine) => int.Parse(readyLine.Split(", ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Lines "step N/M committed: …" so far.</summary>
        public IReadOnlyList<string> Commits => [.. _lines.Where(l => l.StartsWith("step ", StringComparison.Ordinal) && l.Contains(" committed:", StringComparison.Ordinal)
            && !l.Contains(" not committed:", StringComparison.Ordinal))];

        public void Kill()
        {
            try
            {
                if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }

        /// <summary>SIGSTOP (<paramref name="frozen"/>) or SIGCONT: a hung process, and its waking.</summary>
        public void Freeze(bool frozen)
        {
            using var kill = Process.Start("kill", [frozen ? "-STOP" : "-CONT", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }

        /// <summary>SIGTERM (a graceful stop).</summary>
        public void Terminate() => _ = Process.Start("kill", ["-TERM", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

        public async Task<int> WaitForExit(CancellationToken guard)
        {
            await Process.WaitForExitAsync(guard);
            await _pumps.WaitAsync(guard); // its last lines, which the process may exit before they are read
            return Process.ExitCode;
        }
    }
}
