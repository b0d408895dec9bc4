using System.CommandLine;
using Kto.Cluster.Cmd.Reports;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto plot</c>: a PNG of the training curves in one <c>metrics.jsonl</c>, or of several runs on the same axes
/// (repeat <c>--metrics</c>, with one <c>--name</c> each).
/// </summary>
internal static class PlotCommand
{
    /// <summary>Title used when <c>--title</c> is not given (followed by the run names).</summary>
    public const string DefaultTitle = "KTO training curves";

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var metrics = new Option<FileInfo[]>("--metrics")
        {
            Description = "a run's metrics.jsonl; repeat to compare runs on the same axes",
            Required = true,
        };
        var names = new Option<string[]>("--name")
        {
            Description = "legend name of the --metrics in the same position (default: the file's folder name)",
        };
        var output = new Option<FileInfo>("--out") { Description = "PNG to write", Required = true };
        var title = new Option<string?>("--title") { Description = $"figure title (default: \"{DefaultTitle}: <run names>\")" };
        var notes = new Option<string[]>("--note") { Description = "a line of text shown under the curves; repeatable" };
        var cmd = new Command("plot", "draw loss, kl, rewards and margins against step into a PNG")
        {
            metrics, names, output, title, notes,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() => Run(
            parse.GetValue(metrics)!.Select(f => f.FullName).ToList(), parse.GetValue(names) ?? [],
            parse.GetValue(output)!.FullName, parse.GetValue(title), parse.GetValue(notes) ?? [])));
        return cmd;
    }

    private static int Run(IReadOnlyList<string> metricsPaths, IReadOnlyList<string> names, string pngPath, string? title, IReadOnlyList<string> notes)
    {
        if (names.Count != 0 && names.Count != metricsPaths.Count)
            throw new ArgumentException($"give one --name per --metrics, or none (got {metricsPaths.Count} --metrics and {names.Count} --name)");
        IReadOnlyList<string> runNames = names.Count != 0 ? names : metricsPaths.Select(DefaultRunName).ToList();
        var report = new CurveReport(title ?? $"{DefaultTitle}: {string.Join(" vs ", runNames)}", notes);
        if (metricsPaths.Count == 1) TrainingCurvesPlot.Write(metricsPaths[0], pngPath, report);
        else TrainingCurvesPlot.WriteComparison(runNames.Zip(metricsPaths).ToList(), pngPath, report);
        new ConsoleObserver().Info($"wrote {pngPath}");
        return 0;
    }

    /// <summary>The run's folder name for <c>runs/kto/metrics.jsonl</c>; otherwise the file name without extension.</summary>
    internal static string DefaultRunName(string metricsPath)
    {
        string full = Path.GetFullPath(metricsPath);
        string? folder = Path.GetFileName(Path.GetDirectoryName(full));
        return Path.GetFileName(full) == MetricsLog.FileName && !string.IsNullOrEmpty(folder)
            ? folder
            : Path.GetFileNameWithoutExtension(full);
    }
}
