using System.CommandLine;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto sft --config sft.json</c>: supervised fine-tuning, the way reference models are made.</summary>
internal static class SftCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config") { Description = "run config (same keys as kto train minus the KTO ones; learning_rate defaults to 2e-5)", Required = true };
        var resume = new Option<bool>("--resume") { Description = "resume from the newest checkpoint in output_dir" };
        var overwrite = new Option<bool>("--overwrite") { Description = "start afresh even if output_dir holds an earlier run" };
        var device = new Option<string?>("--device") { Description = "override the config's device: cpu, cuda or cuda:N" };
        var cmd = new Command("sft", "supervised fine-tuning on prompt/completion data (loss on completion tokens only)") { config, resume, overwrite, device };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            KtoConfig c = KtoConfigReader.Load(parse.GetValue(config)!.FullName, RunKind.Sft);
            c = RunOverrides.Apply(c, parse.GetValue(resume), parse.GetValue(overwrite), parse.GetValue(device));
            var observer = new ConsoleObserver();
            using var cancel = CancelOnCtrlC.Install(observer);
            using var trainer = new SftTrainer(c, observer);
            TrainResult result = trainer.Run(cancel.Token);
            observer.Done();
            RunOverrides.PrintResult(result, c, ["loss", "mean_token_accuracy"]);
            return cancel.IsCancellationRequested ? 130 : 0;
        }));
        return cmd;
    }
}
