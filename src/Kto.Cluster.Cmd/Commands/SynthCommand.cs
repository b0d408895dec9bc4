using System.CommandLine;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Tasks;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto data synth addition</c>: addition prompts (train or eval split) or supervised rows.</summary>
internal static class SynthCommand
{
    /// <summary>The <c>--kind</c> that writes supervised {prompt, completion} rows.</summary>
    private const string SftKind = "sft";

    /// <summary>The <c>--kind</c> that writes {prompt} rows.</summary>
    private const string PromptsKind = "prompts";

    /// <summary>Share of carry problems answered wrongly in SFT rows when none is asked for.</summary>
    private const double DefaultWrongShare = 0.0;

    public static Command Addition()
    {
        var kind = new Option<string>("--kind") { Description = "sft: {prompt, completion} rows (train split); prompts: {prompt} rows", Required = true };
        kind.AcceptOnlyFromAmong(SftKind, PromptsKind);
        var split = new Option<string>("--split") { Description = "train or eval (held-out problems)", Required = true };
        split.AcceptOnlyFromAmong("train", "eval");
        var count = new Option<int>("--count") { Description = "number of distinct problems", Required = true };
        var seed = new Option<long>("--seed") { Description = "which problems, in which order (and, for sft, which answers are wrong)", Required = true };
        var wrongShare = new Option<double>("--wrong-share") { Description = "sft: share of the problems with a carry answered with the carry dropped", DefaultValueFactory = _ => DefaultWrongShare };
        var digits = new Option<int>("--digits") { Description = "digits of each operand", DefaultValueFactory = _ => AdditionTask.DefaultDigits };
        var output = new Option<FileInfo>("--out") { Description = "output JSONL", Required = true };
        var cmd = new Command(AdditionTask.TaskName, "a+b= problems with operands of exactly --digits digits (see docs/tasks.md)")
        {
            kind, split, count, seed, wrongShare, digits, output,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() => Run(
            parse.GetValue(kind)!, parse.GetValue(split) == "eval" ? TaskSplit.Eval : TaskSplit.Train, parse.GetValue(count),
            parse.GetValue(seed), parse.GetValue(wrongShare), parse.GetValue(digits), parse.GetValue(output)!.FullName)));
        return cmd;
    }

    private static int Run(string kind, TaskSplit split, int count, long seed, double wrongShare, int digits, string outPath)
    {
        var task = new AdditionTask(digits);
        var observer = new ConsoleObserver();
        if (kind == SftKind)
        {
            if (split != TaskSplit.Train) throw new ArgumentException("--kind sft writes training rows: use --split train");
            var rows = task.SftRows(count, wrongShare, seed);
            TaskJsonlWriter.WriteSft(outPath, rows);
            int wrong = rows.Count(r => !task.IsCorrect(r.Prompt, r.Completion));
            observer.Info($"wrote {rows.Count} sft rows of {digits}-digit addition to {outPath}: {wrong} with a dropped carry, {rows.Count - wrong} right");
        }
        else
        {
            if (wrongShare != DefaultWrongShare) throw new ArgumentException("--wrong-share applies to --kind sft only");
            var problems = task.Problems(split, count, seed);
            TaskJsonlWriter.WritePrompts(outPath, problems.Select(p => task.Prompt(p.A, p.B)));
            observer.Info($"wrote {problems.Count} {(split == TaskSplit.Eval ? "eval" : "train")} prompts of {digits}-digit addition to {outPath}");
        }
        return 0;
    }
}
