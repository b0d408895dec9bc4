using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Kto.Cluster.Cmd.Cluster;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto bench cluster</c>: step throughput of a local cluster with 1 and with N (<c>--trainers</c>, default 2) trainer
/// processes (1 thread each) on the same run, and the time from a trainer's SIGKILL to the next committed step.
/// </summary>
internal static class BenchClusterCommand
{
    public static Command Create()
    {
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 4, Description = "n_layer" };
        var width = new Option<int>("--width") { DefaultValueFactory = _ => 256, Description = "n_embd (4 heads)" };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => 4096, Description = "vocab_size" };
        var tokens = new Option<int>("--tokens") { DefaultValueFactory = _ => 64, Description = "tokens per example, half prompt" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 16, Description = "global batch (examples per step)" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20, Description = "measured steps per cluster size" };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 120, Description = "steps left out of the measurement: the hosts' JIT tiers up code that runs about once a second (gossip, heartbeats, the failure detectors) for their first half minute or so, a coordinator burning 0.020–0.030 CPU-s per step on it instead of about 0.010" };
        var determinism = new Option<bool>("--full-determinism") { Description = "train with full_determinism; the baseline's bench step too, its share being the busiest member's slices" };
        var slicesOption = new Option<int>("--determinism-slices") { DefaultValueFactory = _ => new Kto.Domain.Options.KtoConfig().DeterminismSlices, Description = "determinism_slices under --full-determinism (default: the run config's); --batch must be a multiple of it" };
        var ceilingRuns = new Option<int>("--ceiling-runs") { DefaultValueFactory = _ => 3, Description = "times the machine's ceiling is measured (whole batch alone, then the shares at once); the median run's is used" };
        var lora = new Option<bool>("--lora") { Description = "train LoRA adapters (r 16, alpha 32, all-linear) instead of the whole model" };
        var trainers = new Option<int>("--trainers") { DefaultValueFactory = _ => 2, Description = "trainer processes of the cluster compared with 1 (2–8)" };
        var floodRate = new Option<double>("--flood-rate") { DefaultValueFactory = _ => 1000, Description = "connections per second the flood opens, the same into the cluster and into the control's ports (0: as fast as the ports close them)" };
        var flood = new Option<bool>("--flood") { Description = "also measure the N-trainer cluster while strangers flood the coordinator's Akka port and every ring port with random bytes, and again with the same flood into ports outside the cluster (step time and the cluster processes' CPU per step, flooded against not and against the flood elsewhere)" };
        var floodFrom = new Option<string?>("--flood-from") { Description = "local address the flood's connections come from (default: the system's choice); e.g. 127.0.0.2 inside the network rig, whose firewall rule refuses every address but the cluster's (docs/cluster.md, \"Strangers flooding the ports\")" };
        var cmd = new Command("cluster", "steps/s of a local cluster with 1 and N trainer processes (1 thread each), and kill -9 to the next commit")
        {
            layers, width, vocab, tokens, batch, steps, warmup, lora, determinism, slicesOption, trainers, flood, floodRate, floodFrom, ceilingRuns,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            int n = parse.GetValue(steps), w = parse.GetValue(warmup);
            if (n < 2 || w < 0) throw new ArgumentException("--steps must be at least 2 and --warmup not negative");
            int t = parse.GetValue(trainers);
            if (t is < 2 or > 8) throw new ArgumentException($"--trainers must be 2–8, got {t}");
            int slices = parse.GetValue(slicesOption);
            if (parse.GetValue(determinism) && (slices < 1 || parse.GetValue(batch) % slices != 0))
                throw new ArgumentException($"--determinism-slices must be at least 1 and divide --batch ({parse.GetValue(batch)}), got {slices}");
            string dir = Directory.CreateTempSubdirectory("kto-bench-cluster-").FullName;
            try
            {
                var observer = new Terminal.ConsoleObserver();
                string config = WriteRun(dir, parse.GetValue(layers), parse.GetValue(width), parse.GetValue(vocab), parse.GetValue(tokens), parse.GetValue(batch), totalSteps: w + n + 15, parse.GetValue(lora), parse.GetValue(determinism) ? slices : null);
                double? rateLimit = parse.GetValue(floodRate) switch
                {
                    0 => null,
                    > 0 and var r => r,
                    var r => throw new ArgumentException($"--flood-rate must be positive or 0, got {r}"),
                };
                IPAddress? from = parse.GetValue(floodFrom) is { } a
                    ? IPAddress.TryParse(a, out IPAddress? parsed) ? parsed : throw new ArgumentException($"--flood-from must be an IP address, got '{a}'")
                    : null;
                var (one, _, oneCompute, _, _, _, oneCoordinatorCpu, oneTrainerCpu, _, _, _) = Measure(dir, config, 1, w, n, killAfter: false, Flood.None, observer);
                var (two, failover, twoCompute, twoExchange, twoWait, twoBytes, twoCoordinatorCpu, twoTrainerCpu, unflooded, twoSlowest, twoRebalanced) = Measure(dir, config, t, w, n, killAfter: true, Flood.None, observer);
                string flooded = "";
                if (parse.GetValue(flood))
                {
                    observer.Info($"the {t}-trainer cluster again, its coordinator's Akka port and every ring port flooded with random bytes");
                    var (rate, _, _, _, _, _, coordinatorCpu, trainerCpu, f, _, _) = Measure(dir, config, t, w, n, killAfter: false, Flood.Cluster, observer, rateLimit, from);
                    // The control: the same flood on the same machine into ports outside the cluster that refuse as
                    // cheaply as a port can; what the flooded cluster loses beyond it is the cluster's own cost.
                    observer.Info($"the {t}-trainer cluster again, the same flood into {1 + t} ports outside it (the machine's share of the slowdown)");
                    var (elsewhereRate, _, _, _, _, _, elsewhereCoordinatorCpu, elsewhereTrainerCpu, e, _, _) = Measure(dir, config, t, w, n, killAfter: false, Flood.Elsewhere, observer, rateLimit, from);
                    flooded = string.Create(CultureInfo.InvariantCulture,
                        $",\"flooded\":{{\"trainers_{t}_step_s\":{1 / rate:0.000},\"step_vs_unflooded\":{two / rate:0.000},\"step_vs_flood_elsewhere\":{elsewhereRate / rate:0.000},\"cpu_s_per_step\":{{\"coordinator\":{coordinatorCpu:0.000},\"trainer\":{trainerCpu:0.000}}},\"flood_mb_s\":{f.MBps:0.0},\"flood_connections_per_s\":{f.ConnectionsPerSecond:0.0},\"flood_refused_per_s\":{f.RefusedPerSecond:0.0},\"log_bytes_per_step\":{f.LogBytesPerStep:0},\"unflooded_log_bytes_per_step\":{unflooded.LogBytesPerStep:0}}}" +
                        $",\"flood_elsewhere\":{{\"trainers_{t}_step_s\":{1 / elsewhereRate:0.000},\"step_vs_unflooded\":{two / elsewhereRate:0.000},\"cpu_s_per_step\":{{\"coordinator\":{elsewhereCoordinatorCpu:0.000},\"trainer\":{elsewhereTrainerCpu:0.000}}},\"flood_mb_s\":{e.MBps:0.0},\"flood_connections_per_s\":{e.ConnectionsPerSecond:0.0},\"flood_refused_per_s\":{e.RefusedPerSecond:0.0},\"log_bytes_per_step\":{e.LogBytesPerStep:0}}}");
                }
                observer.Done();
                int b = parse.GetValue(batch);
                // The machine's own ceiling, without any cluster: one process stepping the whole batch alone, against
                // N processes stepping 1/N of the batch each at the same time (our step, 1 thread each). On shared or
                // hyper-threaded cores they slow each other down, and no protocol can beat that. Then the same N in
                // lock-step, each waiting after every step for the slowest: a synchronous step's own cost on this
                // machine, which no synchronous protocol can beat either. As many measured steps as the cluster's:
                // the ceiling is the noisier side of the ratio.
                string[] shape = ["--layers", parse.GetValue(layers).ToString(CultureInfo.InvariantCulture), "--width", parse.GetValue(width).ToString(CultureInfo.InvariantCulture),
                    "--vocab", parse.GetValue(vocab).ToString(CultureInfo.InvariantCulture), "--tokens", parse.GetValue(tokens).ToString(CultureInfo.InvariantCulture), "--steps", n.ToString(CultureInfo.InvariantCulture), "--threads", "1", .. (parse.GetValue(lora) ? (string[])["--lora"] : [])];
                observer.Info($"baseline: one process stepping the whole batch, then {t} processes stepping 1/{t} each at once, free-running and in lock-step (kto bench step-paced)");
                string Text(int v) => v.ToString(CultureInfo.InvariantCulture);
                int runs = parse.GetValue(ceilingRuns);
                if (runs < 1) throw new ArgumentException($"--ceiling-runs must be at least 1, got {runs}");
                (string[] Whole, string[] Share) baselineArgs;
                if (parse.GetValue(determinism))
                {
                    // The run's slices are fixed (slices of b / slices examples each) and the busiest member computes
                    // ceil(slices / t) of them, one at a time: the baseline's share is that many slices of that size,
                    // not 1/t of the batch cut into `slices` smaller ones.
                    int perMember = (slices + t - 1) / t;
                    baselineArgs = ([.. shape, "--full-determinism", "--determinism-slices", Text(slices), "--batch", Text(b)],
                        [.. shape, "--full-determinism", "--determinism-slices", Text(perMember), "--batch", Text(Math.Max(perMember, b / slices * perMember))]);
                }
                else baselineArgs = ([.. shape, "--batch", Text(b)], [.. shape, "--batch", Text(Math.Max(1, b / t))]);
                // Each run: the whole batch alone, then the shares at once, then the shares in lock-step; the ceiling
                // is the median run's (the machine's speed moves by several per cent from one minute to the next). Our
                // step alone in each process, as a trainer runs it, and mean step times, as the cluster's rates are
                // (steps over the time they took, slow steps included).
                var baselines = Enumerable.Range(0, runs).Select(_ => (Whole: PacedMilliseconds(baselineArgs.Whole, 1, n, lockstep: false),
                    Shares: PacedMilliseconds(baselineArgs.Share, t, n, lockstep: false), Lockstep: PacedMilliseconds(baselineArgs.Share, t, n, lockstep: true)))
                    .Select(r => (Whole: r.Whole.Milliseconds[0], WholeCpu: r.Whole.CpuSeconds[0], Shares: r.Shares.Milliseconds, SharesCpu: r.Shares.CpuSeconds.Average(),
                        Lockstep: r.Lockstep.Milliseconds[0], LockstepCpu: r.Lockstep.CpuSeconds.Average())).ToList();
                double[] ceilings = [.. baselines.Select(r => r.Whole / r.Shares.Max())];
                int median = Enumerable.Range(0, runs).OrderBy(i => ceilings[i]).ElementAt(runs / 2);
                double whole = baselines[median].Whole;
                double[] halves = baselines[median].Shares;
                double ceiling = ceilings[median];
                double lockstep = whole / baselines[median].Lockstep;
                string ceilingRunsJson = string.Join(",", ceilings.Select(c => c.ToString("0.000", CultureInfo.InvariantCulture)));
                // member: a member's time from StepStart to the end of its all-reduce (of which exchange: in the
                // all-reduces, waiting for the slower member included; straggler wait: how long the fastest member
                // waited for the slowest, the spread of their times in the all-reduces); the rest of a step is the coordinator's
                // round trip, the commit's persist and the apply (clip + AdamW).
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"bench\":\"cluster\",\"lora\":{(parse.GetValue(lora) ? "true" : "false")},\"full_determinism\":{(parse.GetValue(determinism) ? "true" : "false")},\"determinism_slices\":{(parse.GetValue(determinism) ? slices : 0)},\"batch\":{b},\"steps\":{n},\"trainers\":{t},\"trainers_1_steps_per_s\":{one:0.000},\"trainers_{t}_steps_per_s\":{two:0.000},\"speedup\":{two / one:0.000},\"speedup_goal\":{0.9 * t:0.0}," +
                    $"\"trainers_1_step_s\":{1 / one:0.000},\"trainers_1_member_s\":{oneCompute:0.000},\"trainers_{t}_step_s\":{1 / two:0.000},\"trainers_{t}_member_s\":{twoCompute:0.000},\"trainers_{t}_exchange_s\":{twoExchange:0.000},\"trainers_{t}_straggler_wait_s\":{twoWait:0.000},\"trainers_{t}_slowest_share\":{{{string.Join(",", twoSlowest.Select(kv => $"\"{kv.Key}\":{kv.Value.ToString("0.00", CultureInfo.InvariantCulture)}"))}}},\"trainers_{t}_shares_rebalanced\":{twoRebalanced},\"trainers_{t}_bytes_sent_per_member_step\":{twoBytes:0}," +
                    $"\"trainers_1_cpu_s_per_step\":{{\"coordinator\":{oneCoordinatorCpu:0.000},\"trainer\":{oneTrainerCpu:0.000}}},\"trainers_{t}_cpu_s_per_step\":{{\"coordinator\":{twoCoordinatorCpu:0.000},\"trainer\":{twoTrainerCpu:0.000}}}," +
                    $"\"baseline_whole_batch_one_process_ms\":{whole:0.0},\"baseline_batch_share_processes_ms\":[{string.Join(",", halves.Select(h => h.ToString("0.0", CultureInfo.InvariantCulture)))}],\"machine_ceiling_speedup\":{ceiling:0.000},\"machine_ceiling_speedup_runs\":[{ceilingRunsJson}],\"speedup_vs_ceiling\":{two / one / ceiling:0.000}," +
                    $"\"baseline_cpu_s_per_step\":{{\"whole_batch\":{baselines[median].WholeCpu:0.000},\"batch_share\":{baselines[median].SharesCpu:0.000},\"batch_share_lockstep\":{baselines[median].LockstepCpu:0.000}}}," +
                    $"\"baseline_batch_share_lockstep_ms\":{baselines[median].Lockstep:0.0},\"machine_lockstep_ceiling_speedup\":{lockstep:0.000},\"speedup_vs_lockstep_ceiling\":{two / one / lockstep:0.000}," +
                    $"\"kill_to_next_commit_s\":{failover:0.00},\"kill_goal_s\":10{flooded}}}"));
                return 0;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }));
        return cmd;
    }

    /// <summary>
    /// Runs <paramref name="copies"/> copies of <c>kto bench step-paced ARGS</c> (our step alone) at once and times their
    /// last <paramref name="steps"/> steps. Free-running, each copy goes on as soon as it has finished a step, and the
    /// result is each copy's mean step time (ms). In <paramref name="lockstep"/>, after each step every copy waits until
    /// all have finished it, as the members of a synchronous data-parallel step wait at its all-reduce with nothing else
    /// of a protocol (no exchange, coordinator or commit), and the result is the group's mean step time: what a protocol
    /// that cost nothing would reach. With it, each copy's CPU seconds (user + system, from /proc) per measured step,
    /// the like of the cluster's <c>cpu_s_per_step</c> for the same work.
    /// </summary>
    private static (double[] Milliseconds, double[] CpuSeconds) PacedMilliseconds(string[] args, int copies, int steps, bool lockstep)
    {
        var processes = Enumerable.Range(0, copies).Select(_ => StartSelf(["bench", "step-paced", .. args])).ToList();
        try
        {
            var errors = processes.Select(p => p.StandardError.ReadToEndAsync()).ToList();
            int total = new Kto.Bench.StepBenchOptions().WarmupSteps + steps;
            var cpuStart = new TimeSpan[copies];
            var cpu = new double[copies];
            // Read while the copy is held between two steps (after its "step done", before its release).
            TimeSpan Cpu(int i)
            {
                processes[i].Refresh();
                return processes[i].TotalProcessorTime;
            }
            void StepDone(int i, int step)
            {
                if (processes[i].StandardOutput.ReadLine() != BenchCommands.PacedStepDone)
                {
                    processes[i].WaitForExit();
                    throw new InvalidOperationException($"kto bench step-paced failed: {errors[i].Result}");
                }
                if (step == total - steps - 1) cpuStart[i] = Cpu(i);
                else if (step == total - 1) cpu[i] = (Cpu(i) - cpuStart[i]).TotalSeconds / steps;
            }
            void Release(int i)
            {
                processes[i].StandardInput.WriteLine();
                processes[i].StandardInput.Flush();
            }
            double[] result;
            if (lockstep)
            {
                var clock = new Stopwatch();
                for (int step = 0; step < total; step++)
                {
                    for (int i = 0; i < copies; i++) StepDone(i, step);
                    if (step == total - steps - 1) clock.Start(); // the measured steps begin at this release
                    if (step == total - 1) clock.Stop();
                    for (int i = 0; i < copies; i++) Release(i);
                }
                result = [clock.Elapsed.TotalMilliseconds / steps];
            }
            else
            {
                List<Task<double>> copiesRun = [.. Enumerable.Range(0, copies).Select(i => Task.Run(() =>
                {
                    var clock = new Stopwatch();
                    for (int step = 0; step < total; step++)
                    {
                        StepDone(i, step);
                        if (step == total - steps - 1) clock.Start();
                        if (step == total - 1) clock.Stop();
                        Release(i);
                    }
                    return clock.Elapsed.TotalMilliseconds / steps;
                }))];
                // Every copy's task ends (the others run on when one fails) before the processes are disposed below.
                Task.WhenAll(copiesRun).ContinueWith(_ => { }, TaskScheduler.Default).Wait();
                result = [.. copiesRun.Select(t => t.GetAwaiter().GetResult())];
            }
            foreach (Process p in processes) p.WaitForExit();
            return (result, cpu);
        }
        finally
        {
            foreach (Process p in processes)
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.Dispose();
            }
        }
    }

    private static Process StartSelf(string[] args)
    {
        ProcessStartInfo psi = PeerProcess.SelfStartInfo();
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        psi.UseShellExecute = false;
        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start kto {string.Join(' ', args.Take(2))}");
    }

    /// <summary>Runs the config on <paramref name="trainers"/> trainers; steps/s over steps warmup…warmup+steps, and (when asked) SIGKILL of the last trainer then the seconds to the next commit.</summary>
    /// <summary>
    /// With <paramref name="flood"/> <see cref="Flood.Cluster"/>, the measured steps run while <see cref="PortFlood"/>
    /// hits the coordinator's Akka port and every ring port; with <see cref="Flood.Elsewhere"/>, as many ports of a
    /// <see cref="PortSink"/> outside the cluster.
    /// </summary>
    private static (double StepsPerSecond, double Failover, double MemberSeconds, double ExchangeSeconds, double StragglerWait, double BytesSent, double CoordinatorCpu, double TrainerCpu, (double MBps, double ConnectionsPerSecond, double RefusedPerSecond, double LogBytesPerStep) Flood, IReadOnlyDictionary<string, double> SlowestShare, int Rebalanced) Measure(
        string dir, string config, int trainers, int warmup, int steps, bool killAfter, Flood flood, Terminal.ConsoleObserver observer, double? floodRate = null, IPAddress? floodFrom = null)
    {
        string runDir = Path.Combine(dir, $"cluster-{trainers}{(flood == Flood.None ? "" : "-flood-" + flood.ToString().ToLowerInvariant())}");
        long LogBytes(string process) => new FileInfo(Path.Combine(runDir, "logs", process + ".log")) is { Exists: true } f ? f.Length : 0;
        var launcher = LocalClusterLauncher.Start(new LocalClusterOptions(config, $"bench-{trainers}", trainers, runDir, Supervise: false), observer);
        try
        {
            // CPU time per measured step of the coordinator host and of each trainer (from /proc, sampled as the commits arrive).
            string[] names = ["coordinator", .. Enumerable.Range(1, trainers).Select(t => $"trainer-{t}")];
            while (launcher.Commits.Count < warmup + 1) Thread.Sleep(20);
            using var stopFlood = new CancellationTokenSource();
            var floodClock = System.Diagnostics.Stopwatch.StartNew();
            PortSink? sink = flood == Flood.Elsewhere ? new PortSink(1 + launcher.RingEndpoints.Count) : null;
            IReadOnlyList<IPEndPoint> targets = sink?.Endpoints ?? [IPEndPoint.Parse(launcher.CoordinatorAddress), .. launcher.RingEndpoints];
            Task<(long Bytes, long Connections, long Refused)>? flooding = flood == Flood.None ? null : PortFlood.RunAsync(targets, workers: floodRate is null ? 4 : 32, stopFlood.Token, floodRate, floodFrom);
            TimeSpan[] cpuBefore = [.. names.Select(launcher.CpuTime)];
            long[] logBefore = [.. names.Select(LogBytes)];
            while (launcher.Commits.Count < warmup + steps + 1) Thread.Sleep(20);
            TimeSpan[] cpuAfter = [.. names.Select(launcher.CpuTime)];
            long logGrowth = names.Select(LogBytes).Zip(logBefore, (after, before) => after - before).Sum();
            stopFlood.Cancel();
            (long floodBytes, long floodConnections, long floodRefused) = flooding?.GetAwaiter().GetResult() ?? (0, 0, 0);
            sink?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            double floodSeconds = floodClock.Elapsed.TotalSeconds;
            double coordinatorCpu = (cpuAfter[0] - cpuBefore[0]).TotalSeconds / steps;
            double trainerCpu = Enumerable.Range(1, trainers).Average(i => (cpuAfter[i] - cpuBefore[i]).TotalSeconds) / steps;
            var commits = launcher.Commits;
            double rate = steps / (commits[warmup + steps].At - commits[warmup].At).TotalSeconds;
            double compute = commits.Skip(warmup + 1).Take(steps).Average(c => double.Parse(
                System.Text.RegularExpressions.Regex.Match(c.Line, @"member ([0-9.]+) s").Groups[1].Value, CultureInfo.InvariantCulture));
            double failover = double.NaN;
            if (killAfter)
            {
                int before = launcher.Commits.Count;
                TimeSpan killedAt = launcher.Elapsed;
                launcher.KillTrainer(trainers);
                while (true)
                {
                    var after = launcher.Commits.Skip(before).FirstOrDefault(c => !c.Line.Contains($"t{trainers}", StringComparison.Ordinal) && c.At > killedAt);
                    if (after.Line is not null)
                    {
                        failover = (after.At - killedAt).TotalSeconds;
                        break;
                    }
                    Thread.Sleep(20);
                }
            }
            launcher.WaitAsync(CancellationToken.None).GetAwaiter().GetResult();
            double exchange = commits.Skip(warmup + 1).Take(steps).Average(c => double.Parse(
                System.Text.RegularExpressions.Regex.Match(c.Line, @"exchange ([0-9.]+) s").Groups[1].Value, CultureInfo.InvariantCulture));
            double sent = commits.Skip(warmup + 1).Take(steps).Average(c => double.Parse(
                System.Text.RegularExpressions.Regex.Match(c.Line, @"sent ([0-9]+) B").Groups[1].Value, CultureInfo.InvariantCulture));
            double wait = commits.Skip(warmup + 1).Take(steps).Average(c => double.Parse(
                System.Text.RegularExpressions.Regex.Match(c.Line, @"straggler wait ([0-9.]+) s").Groups[1].Value, CultureInfo.InvariantCulture));
            // Of the measured steps, the share each member was the slowest in: even shares say the wait is the machine's
            // noise, one member's large share that it is slower (a busier box, or sharing its core).
            var slowest = commits.Skip(warmup + 1).Take(steps)
                .Select(c => System.Text.RegularExpressions.Regex.Match(c.Line, @"\(slowest ([^)]+)\)"))
                .Where(m => m.Success).GroupBy(m => m.Groups[1].Value, StringComparer.Ordinal)
                .OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count() / (double)steps, StringComparer.Ordinal);
            return (rate, failover, compute, exchange, wait, sent, coordinatorCpu, trainerCpu, (floodBytes / 1e6 / floodSeconds, floodConnections / floodSeconds, floodRefused / floodSeconds, logGrowth / (double)steps), slowest,
                File.ReadLines(Path.Combine(runDir, "logs", "coordinator.log")).Count(l => l.Contains("rebalanced", StringComparison.Ordinal)));
        }
        finally
        {
            launcher.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static string WriteRun(string dir, int layers, int width, int vocab, int tokens, int batch, int totalSteps, bool lora, int? determinismSlices)
    {
        string model = Path.Combine(dir, "model");
        using (var g = new torch.Generator(1))
        using (var m = new GptLmHeadModel(new GptConfig(vocab, Math.Max(tokens, 64), width, layers, 4, Tokenizer: "byte"), g))
            ModelCheckpoint.Save(m, model);
        var rng = new Random(5);
        string Text(int length) => new([.. Enumerable.Range(0, length).Select(_ => (char)rng.Next('a', 'z' + 1))]);
        int half = Math.Max(1, tokens / 2);
        File.WriteAllLines(Path.Combine(dir, "data.jsonl"), Enumerable.Range(0, batch * 8).Select(i =>
            JsonSerializer.Serialize(new { prompt = Text(half), completion = Text(half - 1), label = i % 3 != 0 })));
        string config = Path.Combine(dir, "run.json");
        File.WriteAllText(config, string.Create(CultureInfo.InvariantCulture, $$"""
            {"model_name_or_path": "model", "dataset_path": "data.jsonl", "output_dir": "out", "learning_rate": 1e-5,
             "per_device_train_batch_size": {{batch}}, "max_steps": {{totalSteps}}, "max_length": {{tokens}}, "max_prompt_length": {{half}},
             "logging_steps": 1000, "save_steps": 100000, "num_threads": 1, "seed": 1{{(lora ? ", \"use_peft\": true, \"lora_target_modules\": \"all-linear\"" : "")}}{{(determinismSlices is { } k ? $", \"full_determinism\": true, \"determinism_slices\": {k}" : "")}}}
            """));
        return config;
    }

    /// <summary>Where the measured steps' flood goes: nowhere, the cluster's ports, or ports outside it (the control).</summary>
    private enum Flood
    {
        None,
        Cluster,
        Elsewhere,
    }
}
