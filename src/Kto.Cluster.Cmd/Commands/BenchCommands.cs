using System.CommandLine;
using System.Globalization;
using Kto.Bench;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto bench …</c>: benchmarks that print their figures next to a baseline measured in the same run.</summary>
internal static class BenchCommands
{
    public static Command Create() => new("bench", "benchmarks (each prints one JSON line)")
    {
        Step(), StepPeak(), StepPaced(), Load(), LoadSide(), BenchAllReduceCommand.Create(), BenchAllReduceCommand.CreatePeer(), BenchClusterCommand.Create(), Plot(),
    };

    /// <summary><c>kto bench plot</c>: step time against link rate, from scripts/rig-sweep.sh's results.</summary>
    private static Command Plot()
    {
        var results = new Option<FileInfo>("--results") { Required = true, Description = "kto bench cluster results, one JSON line each with link_mbit (scripts/rig-sweep.sh writes them)" };
        var output = new Option<FileInfo>("--out") { Required = true, Description = "PNG to write" };
        var title = new Option<string>("--title") { DefaultValueFactory = _ => "kto bench cluster in the network rig: step time against link rate", Description = "figure title" };
        var cmd = new Command("plot", "draw kto bench cluster's step time against link rate (results of scripts/rig-sweep.sh) into a PNG") { results, output, title };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            var points = Reports.LinkSweepPlot.Read(parse.GetValue(results)!.FullName);
            Reports.LinkSweepPlot.Write(points, parse.GetValue(output)!.FullName, parse.GetValue(title)!);
            new Terminal.ConsoleObserver().Info($"wrote {parse.GetValue(output)!.FullName} ({points.Count} results)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Runs <c>kto bench load-side</c> in a fresh process and reads its "PEAK SECONDS" line.</summary>
    private static (long Peak, double Seconds) MeasureInChild(string dir, string side)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "bench", "load-side", dir, side }) psi.ArgumentList.Add(a);
        // glibc's own malloc, as a reader of safetensors has it: kept freed memory would raise the bare loop's peak (it
        // frees each whole shard before reading the next) and flatter the comparison.
        psi.Environment[Kto.Domain.Devices.NativeHeap.OptOutVariable] = "default";
        using var p = System.Diagnostics.Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"bench load-side {side} failed ({p.ExitCode}): {err.Result.Trim()}");
        string[] parts = output.Split(' ');
        return (long.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    private static Command LoadSide()
    {
        var dir = new Argument<string>("dir");
        var side = new Argument<string>("side");
        var cmd = new Command("load-side", "one side of `kto bench load`, in its own process (prints peak bytes and seconds)") { dir, side };
        cmd.Hidden = true;
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            var (peak, seconds) = LoadBenchmark.MeasureSide(parse.GetValue(dir)!, parse.GetValue(side)!);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{peak} {seconds:R}"));
            return 0;
        }));
        return cmd;
    }

    private static Command Load()
    {
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 12, Description = "n_layer (default: GPT-2 small)" };
        var width = new Option<int>("--width") { DefaultValueFactory = _ => 768, Description = "n_embd" };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => 12, Description = "n_head" };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => 50257, Description = "vocab_size" };
        var dtype = new Option<string>("--dtype") { DefaultValueFactory = _ => "bf16", Description = "stored dtype: bf16, fp16 or fp32" };
        var shardMb = new Option<int>("--shard-mb") { DefaultValueFactory = _ => 100, Description = "largest shard, MB (10⁶ bytes)" };
        var cmd = new Command("load", "peak memory of loading a sharded checkpoint into float32 weights, against the model's size and a bare loop that reads each shard whole")
        {
            layers, width, heads, vocab, dtype, shardMb,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            TorchSharp.torch.ScalarType stored = parse.GetValue(dtype) switch
            {
                "bf16" => TorchSharp.torch.ScalarType.BFloat16,
                "fp16" => TorchSharp.torch.ScalarType.Float16,
                "fp32" => TorchSharp.torch.ScalarType.Float32,
                var other => throw new ArgumentException($"--dtype: expected bf16, fp16 or fp32, found \"{other}\""),
            };
            if (parse.GetValue(shardMb) < 1) throw new ArgumentException("--shard-mb must be at least 1");
            string dir = Directory.CreateTempSubdirectory("kto-bench-load-").FullName;
            try
            {
                LoadBenchResult r = LoadBenchmark.Run(parse.GetValue(layers), parse.GetValue(width), parse.GetValue(heads), parse.GetValue(vocab), stored,
                    parse.GetValue(shardMb) * 1_000_000L, dir, side => MeasureInChild(dir, side));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{{\"bench\":\"load\",\"dtype\":\"{parse.GetValue(dtype)}\",\"shards\":{r.Shards},\"model_bytes\":{r.ModelBytes},\"stored_bytes\":{r.StoredBytes},\"peak_bytes\":{r.PeakBytes},\"bare_peak_bytes\":{r.BarePeakBytes},\"model_mb\":{r.ModelBytes / 1e6:0.0},\"stored_mb\":{r.StoredBytes / 1e6:0.0}," +
                    $"\"peak_mb\":{r.PeakBytes / 1e6:0.0},\"peak_vs_model\":{(double)r.PeakBytes / r.ModelBytes:0.000},\"seconds\":{r.Seconds:0.00}," +
                    $"\"bare_peak_mb\":{r.BarePeakBytes / 1e6:0.0},\"bare_peak_vs_model\":{(double)r.BarePeakBytes / r.ModelBytes:0.000},\"bare_seconds\":{r.BareSeconds:0.00}}}"));
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>The options of <c>kto bench step</c> (and its hidden peak-measuring child), and how to read them.</summary>
    private sealed class StepOptions
    {
        private readonly StepBenchOptions _d = new();
        public readonly Option<string> Arch, Precision;
        public readonly Option<int> Layers, Heads, Width, Vocab, Tokens, Batch, Steps, Threads;
        public readonly Option<bool> Precomputed, Naive, Lora, Determinism;
        public readonly Option<int> Slices;
        public readonly Option<string> Device;

        public StepOptions()
        {
            Arch = new Option<string>("--arch") { DefaultValueFactory = _ => _d.Arch, Description = "gpt2, or llama, mistral, qwen2, qwen3 (untied head, kv heads = heads/2, SwiGLU 8/3 × width)" };
            Layers = new Option<int>("--layers") { DefaultValueFactory = _ => _d.Layers, Description = "n_layer" };
            Heads = new Option<int>("--heads") { DefaultValueFactory = _ => _d.Heads, Description = "n_head" };
            Width = new Option<int>("--width") { DefaultValueFactory = _ => _d.Width, Description = "n_embd" };
            Vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => _d.Vocab, Description = "vocab_size" };
            Tokens = new Option<int>("--tokens") { DefaultValueFactory = _ => _d.Tokens, Description = "tokens per example, half prompt" };
            Batch = new Option<int>("--batch") { DefaultValueFactory = _ => _d.Batch, Description = "examples per step" };
            Steps = new Option<int>("--steps") { DefaultValueFactory = _ => _d.Steps, Description = "measured steps per side" };
            Threads = CommonOptions.Threads(_d.Threads);
            Precomputed = new Option<bool>("--precomputed-ref") { Description = "reference log-probs precomputed instead of a live reference model" };
            Naive = new Option<bool>("--naive-logits") { Description = "our step forms the whole (B, T, V) logits, as the bare loop does, instead of chunks of completion positions" };
            Device = CommonOptions.Device();
            Determinism = new Option<bool>("--full-determinism") { Description = "our step under full_determinism (fixed slices computed one by one, exact sums); the bare loop is unchanged" };
            Slices = new Option<int>("--determinism-slices") { DefaultValueFactory = _ => _d.DeterminismSlices, Description = "slices per batch under --full-determinism" };
            Lora = new Option<bool>("--lora") { Description = "both sides train LoRA adapters (r 16, alpha 32, all-linear) on the frozen base; the reference is the base (adapters off)" };
            Precision = new Option<string>("--precision") { DefaultValueFactory = _ => _d.Precision, Description = "our step's precision: fp32, bf16 or fp16 (float32 masters, as the run config's bf16/fp16); the bare loop stays float32" };
        }

        public Option[] All => [Arch, Precision, Layers, Heads, Width, Vocab, Tokens, Batch, Steps, Threads, Precomputed, Naive, Lora, Determinism, Slices, Device];

        public StepBenchOptions Read(ParseResult parse) => new()
        {
            Arch = parse.GetValue(Arch)!, Layers = parse.GetValue(Layers), Heads = parse.GetValue(Heads), Width = parse.GetValue(Width),
            Vocab = parse.GetValue(Vocab), Tokens = parse.GetValue(Tokens), Batch = parse.GetValue(Batch), Steps = parse.GetValue(Steps),
            Threads = parse.GetValue(Threads), PrecomputedRef = parse.GetValue(Precomputed), NaiveLogits = parse.GetValue(Naive), Device = parse.GetValue(Device)!,
            Precision = parse.GetValue(Precision)!, Lora = parse.GetValue(Lora),
            FullDeterminism = parse.GetValue(Determinism), DeterminismSlices = parse.GetValue(Slices),
        };

        /// <summary>The arguments that give <paramref name="o"/> back.</summary>
        public static string[] Args(StepBenchOptions o) =>
        [
            "--arch", o.Arch, "--precision", o.Precision, "--layers", I(o.Layers), "--heads", I(o.Heads), "--width", I(o.Width), "--vocab", I(o.Vocab), "--tokens", I(o.Tokens),
            "--batch", I(o.Batch), "--steps", I(o.Steps), "--threads", I(o.Threads), "--device", o.Device,
            .. o.PrecomputedRef ? new[] { "--precomputed-ref" } : [], .. o.NaiveLogits ? new[] { "--naive-logits" } : [],
            .. o.Lora ? new[] { "--lora" } : [],
            .. o.FullDeterminism ? new[] { "--full-determinism", "--determinism-slices", I(o.DeterminismSlices) } : [],
        ];

        private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Runs <c>kto bench step-peak SIDE …</c> in a fresh process and reads the bytes it prints.</summary>
    private static (long Step, long Process) StepPeakInChild(StepBenchOptions o, string side)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "bench", "step-peak", side }.Concat(StepOptions.Args(o))) psi.ArgumentList.Add(a);
        foreach (var (k, v) in StepBenchmark.PeakChildEnvironment) psi.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"bench step-peak {side} failed ({p.ExitCode}): {err.Result.Trim()}");
        string[] parts = output.Split(' ');
        return (long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    private static Command StepPeak()
    {
        var options = new StepOptions();
        var side = new Argument<string>("side");
        var cmd = new Command("step-peak", "one side of `kto bench step`'s memory figure, in its own process (prints bytes)") { side };
        foreach (Option o in options.All) cmd.Options.Add(o);
        cmd.Hidden = true;
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            var (step, process) = StepBenchmark.PeakOfOneStep(options.Read(parse), parse.GetValue(side)!);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{step} {process}"));
            return 0;
        }));
        return cmd;
    }

    /// <summary>The line a <c>bench step-paced</c> child prints after each step; it then waits for a line on stdin.</summary>
    public const string PacedStepDone = "step done";

    private static Command StepPaced()
    {
        var options = new StepOptions();
        var cmd = new Command("step-paced", "one process of `kto bench cluster`'s ceiling: our step alone, printing a line after each and waiting for one on stdin");
        foreach (Option o in options.All) cmd.Options.Add(o);
        cmd.Hidden = true;
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            StepBenchmark.RunPaced(options.Read(parse), () =>
            {
                Console.Out.WriteLine(PacedStepDone);
                Console.Out.Flush();
                if (Console.In.ReadLine() is null) throw new InvalidOperationException("the lock-step group's barrier closed");
            });
            return 0;
        }));
        return cmd;
    }

    private static Command Step()
    {
        var options = new StepOptions();
        var cmd = new Command("step", "time one KTO training step against a bare TorchSharp loop doing the same work, and the peak memory of one step of each");
        foreach (Option o in options.All) cmd.Options.Add(o);
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            StepBenchOptions o = options.Read(parse);
            if (o.Batch < 2 || o.Tokens < 4 || o.Steps < 1) throw new ArgumentException("need --batch ≥ 2, --tokens ≥ 4, --steps ≥ 1");
            StepBenchResult r = StepBenchmark.Run(o, side => StepPeakInChild(o, side));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"bench\":\"step\",\"arch\":\"{o.Arch}\",\"logits\":\"{(o.NaiveLogits ? "full" : "chunked")}\",\"precision\":\"{o.Precision}\",\"lora\":{(o.Lora ? "true" : "false")},\"full_determinism\":{(o.FullDeterminism ? "true" : "false")},\"determinism_slices\":{(o.FullDeterminism ? o.DeterminismSlices : 0)},\"trainable_parameters\":{r.TrainableParameters},\"parameters\":{r.Parameters},\"layers\":{o.Layers},\"heads\":{o.Heads},\"width\":{o.Width},\"vocab\":{o.Vocab},\"tokens\":{o.Tokens},\"batch\":{o.Batch},\"threads\":{o.Threads},\"reference\":\"{(o.PrecomputedRef ? "precomputed" : "live")}\",\"steps\":{o.Steps}," +
                $"\"examples_per_s\":{r.Kto.ExamplesPerSecond:0.00},\"step_ms\":{r.Kto.MedianStepMs:0.0},\"step_mean_ms\":{r.Kto.MeanStepMs:0.0},\"bare_examples_per_s\":{r.Bare.ExamplesPerSecond:0.00},\"bare_step_ms\":{r.Bare.MedianStepMs:0.0},\"kto_vs_bare\":{r.Kto.ExamplesPerSecond / r.Bare.ExamplesPerSecond:0.000}," +
                $"\"step_peak_mb\":{r.PeakStepBytes / 1e6:0},\"bare_step_peak_mb\":{r.BarePeakStepBytes / 1e6:0},\"process_peak_mb\":{r.ProcessPeakBytes / 1e6:0},\"bare_process_peak_mb\":{r.BareProcessPeakBytes / 1e6:0}}}"));
            return 0;
        }));
        return cmd;
    }
}
