using System.CommandLine;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto train --config run.json</c>: single-process KTO training.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config") { Description = "run config (TRL KTOConfig names, snake_case JSON)", Required = true };
        var resume = new Option<bool>("--resume") { Description = "resume from the newest checkpoint in output_dir (same as resume_from_checkpoint: \"latest\")" };
        var overwrite = new Option<bool>("--overwrite") { Description = "start afresh even if output_dir holds an earlier run (same as overwrite_output_dir: true)" };
        var device = new Option<string?>("--device") { Description = "override the config's device: cpu, cuda or cuda:N" };
        var cmd = new Command("train", "train a policy with KTO in this process") { config, resume, overwrite, device };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            KtoConfig c = KtoConfigReader.Load(parse.GetValue(config)!.FullName);
            if (parse.GetValue(resume)) c = c with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest };
            if (parse.GetValue(overwrite)) c = c with { OverwriteOutputDir = true };
            if (parse.GetValue(resume) && parse.GetValue(overwrite)) throw new ArgumentException("--resume and --overwrite exclude each other");
            if (parse.GetValue(device) is string d) c = c with { Device = d };
            return Run(c);
        }));
        return cmd;
    }

    private static int Run(KtoConfig config)
    {
        var observer = new ConsoleObserver();
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // second Ctrl+C: let the process end now
            e.Cancel = true;
            cancel.Cancel();
            observer.Warn("stopping after this step and writing a checkpoint (Ctrl+C again to abort)");
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            using TrainingSetup setup = TrainingSetup.Prepare(config, observer);
            TrainResult result = new KtoTrainer(setup, observer).Run(cancel.Token);
            observer.Done();
            Console.WriteLine($"step {result.GlobalStep}: {Summary(result.LastMetrics)}");
            Console.WriteLine($"checkpoint: {result.FinalCheckpoint}");
            Console.WriteLine($"metrics:    {Path.Combine(config.OutputDir, MetricsLog.FileName)}");
            return cancel.IsCancellationRequested ? 130 : 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static string Summary(IReadOnlyDictionary<string, double> m)
        => string.Join("  ", new[] { "loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins" }
            .Where(m.ContainsKey).Select(k => $"{k} {m[k]:0.0000}"));
}
