using System.CommandLine;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Tasks;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto data label TASK</c>: judges generated samples with the task's checker and writes TRL's standard KTO rows
/// {prompt, completion, label}.
/// </summary>
internal static class LabelCommand
{
    /// <summary>Seed of the subsampling when none is given.</summary>
    private const long DefaultSeed = 0;

    public static Command Create()
    {
        var label = new Command("label", "thumbs-up/down for generated samples from a program checker");
        foreach (string name in TaskRegistry.Names) label.Subcommands.Add(ForTask(name));
        return label;
    }

    private static Command ForTask(string name)
    {
        var input = new Option<FileInfo>("--in") { Description = "samples JSONL (kto generate's output: prompt and completion per line)", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "feedback JSONL: {prompt, completion, label}", Required = true };
        var share = new Option<double?>("--desirable-share") { Description = "subsample the over-represented class so this share of the rows is desirable (0 < s < 1); default: keep every row" };
        var seed = new Option<long>("--seed") { Description = "which rows the subsampling drops", DefaultValueFactory = _ => DefaultSeed };
        var cmd = new Command(name, $"label samples of the {name} task") { input, output, share, seed };
        cmd.SetAction(parse => CommonOptions.Guard(() => Run(TaskRegistry.Get(name), parse.GetValue(input)!.FullName,
            parse.GetValue(output)!.FullName, parse.GetValue(share), parse.GetValue(seed))));
        return cmd;
    }

    private static int Run(IVerifiableTask task, string inPath, string outPath, double? share, long seed)
    {
        var observer = new ConsoleObserver();
        IReadOnlyList<Sample> samples = TaskJsonlReader.ReadSamples(inPath);
        // TRL's KTO format needs a non-empty completion, so a sample that ended at once has no row.
        var usable = samples.Where(s => s.Completion.Length > 0).ToList();
        if (usable.Count < samples.Count)
            observer.Warn($"{samples.Count - usable.Count} of {samples.Count} samples have an empty completion and were left out (a KTO row needs a non-empty completion)");
        var (rows, desirable, undesirable) = FeedbackLabeler.Label(usable, task, share, seed);
        TaskJsonlWriter.WriteFeedback(outPath, rows);
        string kept = rows.Count < usable.Count ? $" (kept {rows.Count} of {usable.Count} to reach a desirable share of {share})" : "";
        observer.Info($"labelled {rows.Count} samples: {desirable} desirable, {undesirable} undesirable{kept}; wrote {outPath}");
        return 0;
    }
}
