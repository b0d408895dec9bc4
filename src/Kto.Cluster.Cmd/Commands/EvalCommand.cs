using System.CommandLine;
using System.Text.Json;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Checkpoints;
using Kto.Domain.Devices;
using Kto.Domain.Evaluation;
using Kto.Domain.Model;
using Kto.Domain.Tasks;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto eval</c>: a checkpoint on held-out prompts, graded by the task's checker — greedy accuracy, desirable
/// rate under sampling and the mean log-ratio against a reference — as one JSON object.
/// </summary>
internal static class EvalCommand
{
    /// <summary>Held-out prompts drawn when no prompts file is given.</summary>
    private const int DefaultCount = 400;

    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "checkpoint to grade", Required = true };
        var reference = new Option<DirectoryInfo?>("--reference") { Description = "reference checkpoint for log-ratios (optional)" };
        var adapter = CommonOptions.Adapter();
        var task = new Option<string>("--task") { Description = $"the checker: {string.Join(", ", TaskRegistry.Names)}", DefaultValueFactory = _ => AdditionTask.TaskName };
        var digits = new Option<int>("--digits") { Description = "operand digits of the addition task", DefaultValueFactory = _ => AdditionTask.DefaultDigits };
        var prompts = new Option<FileInfo?>("--prompts") { Description = "JSONL of prompts; default: --count prompts of the task's held-out (eval) split" };
        var count = new Option<int>("--count") { Description = "held-out prompts drawn when --prompts is not given", DefaultValueFactory = _ => DefaultCount };
        var promptSeed = new Option<long>("--prompt-seed") { Description = "seed choosing the held-out prompts", DefaultValueFactory = _ => 0 };
        var samples = new Option<int>("--samples") { Description = "completions sampled per prompt for the desirable rate", DefaultValueFactory = _ => EvalOptions.DefaultSamples };
        var temperature = new Option<double>("--temperature") { Description = "sampling temperature", DefaultValueFactory = _ => EvalOptions.DefaultTemperature };
        var seed = new Option<long>("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch-size") { Description = "sequences per forward pass", DefaultValueFactory = _ => EvalOptions.DefaultBatchSize };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "longest completion", DefaultValueFactory = _ => EvalOptions.DefaultMaxNewTokens };
        var output = new Option<FileInfo?>("--out") { Description = "write the JSON here too (it always goes to stdout)" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads(0);
        var cmd = new Command("eval", "grade a checkpoint on held-out prompts with the task's checker")
        {
            model, adapter, reference, task, digits, prompts, count, promptSeed, samples, temperature, seed, batch, maxNew, output, device, threads,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            if (parse.GetValue(threads) is int t and > 0) torch.set_num_threads(t);
            IVerifiableTask checker = TaskRegistry.Get(parse.GetValue(task)!, parse.GetValue(digits));
            IReadOnlyList<string> texts = parse.GetValue(prompts) is FileInfo f
                ? [.. TaskJsonlReader.ReadPrompts(f.FullName).Select(r => r.Prompt)]
                : HeldOut(checker, parse.GetValue(count), parse.GetValue(promptSeed));
            var options = new EvalOptions(parse.GetValue(samples), parse.GetValue(temperature), parse.GetValue(seed), parse.GetValue(batch), parse.GetValue(maxNew));
            string modelDir = parse.GetValue(model)!.FullName;
            string? refDir = parse.GetValue(reference)?.FullName;
            EvalReport report = Evaluate(modelDir, refDir, checker, texts, options, parse.GetValue(device)!, new ConsoleObserver(), parse.GetValue(adapter)?.FullName);
            string text = report.ToJson(modelDir, refDir, options).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
            Console.WriteLine(text);
            if (parse.GetValue(output) is FileInfo o) AtomicFile.WriteText(o.FullName, text + "\n");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Prompts of the task's held-out split.</summary>
    public static IReadOnlyList<string> HeldOut(IVerifiableTask task, int count, long seed)
    {
        if (task is not AdditionTask addition) throw new ArgumentException($"task \"{task.Name}\" cannot draw held-out prompts; pass --prompts");
        return [.. addition.Problems(TaskSplit.Eval, count, seed).Select(p => addition.Prompt(p.A, p.B))];
    }

    /// <summary>Loads the checkpoints and evaluates.</summary>
    public static EvalReport Evaluate(string modelDir, string? refDir, IVerifiableTask task, IReadOnlyList<string> prompts,
        EvalOptions options, string deviceName, ConsoleObserver observer, string? adapterDir = null)
    {
        torch.Device device = DeviceSpec.Resolve(deviceName);
        LmConfig config = ModelCheckpoint.LoadConfig(modelDir);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(modelDir, config);
        using CausalLm policy = CommonOptions.LoadModel(modelDir, adapterDir, device);
        using CausalLm? reference = refDir is null ? null : ModelCheckpoint.Load(refDir, device);
        EvalReport report = Evaluator.Run(policy, reference, tokenizer, task, prompts, options, device,
            (phase, done, total) => observer.Progress(new ProgressUpdate("eval " + phase, done, total, new Dictionary<string, double>())));
        observer.Done();
        return report;
    }
}
