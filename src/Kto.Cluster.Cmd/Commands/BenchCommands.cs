using System.CommandLine;
using System.Globalization;
using Kto.Bench;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto bench …</c>: benchmarks that print their figures next to a baseline measured in the same run.</summary>
internal static class BenchCommands
{
    public static Command Create() => new("bench", "benchmarks (each prints one JSON line)")
    {
        Step(), BenchAllReduceCommand.Create(), BenchAllReduceCommand.CreatePeer(), BenchClusterCommand.Create(),
    };

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
