using System.CommandLine;
using Kto.Cluster.Cmd.Demo;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Loss;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto demo</c>: feedback from the shipped reference, KTO, and a measured before/after.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var d = new DemoOptions();
        var output = new Option<string>("--out") { Description = "output folder", DefaultValueFactory = _ => d.OutputDir };
        var reference = new Option<DirectoryInfo?>("--reference") { Description = $"SFT reference checkpoint (default: the shipped {DemoOptions.ShippedReference})" };
        var prompts = new Option<int>("--prompts") { Description = "training prompts sampled for feedback", DefaultValueFactory = _ => d.FeedbackPrompts };
        var samples = new Option<int>("--samples-per-prompt") { Description = "completions sampled per prompt", DefaultValueFactory = _ => d.SamplesPerPrompt };
        var share = new Option<double>("--desirable-share") { Description = "share of desirable rows kept in the feedback", DefaultValueFactory = _ => d.DesirableShare };
        var weights = new Option<string>("--weights") { Description = "recommended (TRL's rule) or unit (both 1.0)", DefaultValueFactory = _ => "recommended" };
        var lossType = new Option<string>("--loss-type") { Description = "kto or apo_zero_unpaired", DefaultValueFactory = _ => KtoLossTypeNames.Kto };
        var precompute = new Option<bool>("--precompute-ref") { Description = "precompute reference log-probs instead of a live reference" };
        var lora = new Option<bool>("--lora") { Description = $"train LoRA adapters (r 16, alpha 32, all-linear) on the frozen reference instead of the whole model; learning rate {DemoOptions.LoraLearningRate} unless given" };
        var beta = new Option<double>("--beta") { Description = "β", DefaultValueFactory = _ => d.Beta };
        var lr = new Option<double>("--learning-rate") { Description = "peak learning rate", DefaultValueFactory = _ => d.LearningRate };
        var epochs = new Option<double>("--epochs") { Description = "passes over the feedback", DefaultValueFactory = _ => d.Epochs };
        var batch = new Option<int>("--batch-size") { Description = "examples per step", DefaultValueFactory = _ => d.BatchSize };
        var evalPrompts = new Option<int>("--eval-prompts") { Description = "held-out prompts", DefaultValueFactory = _ => d.EvalPrompts };
        var seed = new Option<int>("--seed") { Description = "seed of prompts, sampling and training", DefaultValueFactory = _ => d.Seed };
        var threads = CommonOptions.Threads(d.Threads);
        var device = CommonOptions.Device();
        var trainers = new Option<int>("--trainers") { Description = "trainer processes of the local cluster the KTO stage runs on (0 = train in this process)", DefaultValueFactory = _ => d.Trainers };
        var cmd = new Command("demo", "make feedback from the shipped reference with a checker, run KTO, evaluate before and after, plot")
        {
            output, reference, prompts, samples, share, weights, lossType, precompute, lora, beta, lr, epochs, batch, evalPrompts, seed, threads, device, trainers,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            string w = parse.GetValue(weights)!;
            if (w is not ("recommended" or "unit")) throw new ArgumentException($"--weights must be recommended or unit, got \"{w}\"");
            KtoLossType type = KtoLossTypeNames.Parse(parse.GetValue(lossType)!) ?? throw new ArgumentException($"--loss-type must be kto or apo_zero_unpaired");
            var o = new DemoOptions
            {
                OutputDir = parse.GetValue(output)!, Reference = parse.GetValue(reference)?.FullName,
                FeedbackPrompts = parse.GetValue(prompts), SamplesPerPrompt = parse.GetValue(samples), DesirableShare = parse.GetValue(share),
                RecommendedWeights = w == "recommended", LossType = type, PrecomputeRef = parse.GetValue(precompute), Beta = parse.GetValue(beta),
                Lora = parse.GetValue(lora),
                LearningRate = parse.GetValue(lora) && parse.GetResult(lr) is null or { Implicit: true } ? DemoOptions.LoraLearningRate : parse.GetValue(lr), Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch),
                EvalPrompts = parse.GetValue(evalPrompts), Seed = parse.GetValue(seed), Threads = parse.GetValue(threads), Device = parse.GetValue(device)!,
                Trainers = parse.GetValue(trainers),
            };
            if (o.Trainers < 0) throw new ArgumentException("--trainers must be 0 (in process) or more");
            var observer = new ConsoleObserver();
            using var cancel = CancelOnCtrlC.Install(observer);
            DemoResult result = new DemoPipeline(o, observer).Run(cancel.Token);
            Console.WriteLine(File.ReadAllText(result.SummaryPath).TrimEnd());
            return 0;
        }));
        return cmd;
    }
}
