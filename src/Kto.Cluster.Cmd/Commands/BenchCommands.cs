using System.CommandLine;
using System.Globalization;
using Kto.Bench;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto bench …</c>: benchmarks that print their figures next to a baseline measured in the same run.</summary>
internal static class BenchCommands
{
    public static Command Create() => new("bench", "benchmarks (each prints one JSON line)")
    {
        Step(), Load(), LoadSide(), BenchAllReduceCommand.Create(), BenchAllReduceCommand.CreatePeer(), BenchClusterCommand.Create(),
    };

    /// <summary>Runs <c>kto bench load-side</c> in a fresh process and reads its "PEAK SECONDS" line.</summary>
    private static (long Peak, double Seconds) MeasureInChild(string dir, string side)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "kto.dll"), "bench", "load-side", dir, side }) psi.ArgumentList.Add(a);
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

    private static Command Step()
    {
        var d = new StepBenchOptions();
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => d.Layers, Description = "n_layer" };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => d.Heads, Description = "n_head" };
        var width = new Option<int>("--width") { DefaultValueFactory = _ => d.Width, Description = "n_embd" };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => d.Vocab, Description = "vocab_size" };
        var tokens = new Option<int>("--tokens") { DefaultValueFactory = _ => d.Tokens, Description = "tokens per example, half prompt" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => d.Batch, Description = "examples per step" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => d.Steps, Description = "measured steps per side" };
        var threads = CommonOptions.Threads(d.Threads);
        var precomputed = new Option<bool>("--precomputed-ref") { Description = "reference log-probs precomputed instead of a live reference model" };
        var device = CommonOptions.Device();
        var cmd = new Command("step", "time one KTO training step against a bare TorchSharp loop doing the same work")
        {
            layers, heads, width, vocab, tokens, batch, steps, threads, precomputed, device,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            var o = new StepBenchOptions
            {
                Layers = parse.GetValue(layers), Heads = parse.GetValue(heads), Width = parse.GetValue(width),
                Vocab = parse.GetValue(vocab), Tokens = parse.GetValue(tokens), Batch = parse.GetValue(batch),
                Steps = parse.GetValue(steps), Threads = parse.GetValue(threads), PrecomputedRef = parse.GetValue(precomputed),
                Device = parse.GetValue(device)!,
            };
            if (o.Batch < 2 || o.Tokens < 4 || o.Steps < 1) throw new ArgumentException("need --batch ≥ 2, --tokens ≥ 4, --steps ≥ 1");
            StepBenchResult r = StepBenchmark.Run(o);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"bench\":\"step\",\"layers\":{o.Layers},\"heads\":{o.Heads},\"width\":{o.Width},\"vocab\":{o.Vocab},\"tokens\":{o.Tokens},\"batch\":{o.Batch},\"threads\":{o.Threads},\"reference\":\"{(o.PrecomputedRef ? "precomputed" : "live")}\",\"steps\":{o.Steps}," +
                $"\"examples_per_s\":{r.Kto.ExamplesPerSecond:0.00},\"step_ms\":{r.Kto.MedianStepMs:0.0},\"bare_examples_per_s\":{r.Bare.ExamplesPerSecond:0.00},\"bare_step_ms\":{r.Bare.MedianStepMs:0.0},\"kto_vs_bare\":{r.Kto.ExamplesPerSecond / r.Bare.ExamplesPerSecond:0.000}}}"));
            return 0;
        }));
        return cmd;
    }
}
