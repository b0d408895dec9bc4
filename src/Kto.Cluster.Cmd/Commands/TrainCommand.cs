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
            c = RunOverrides.Apply(c, parse.GetValue(resume), parse.GetValue(overwrite), parse.GetValue(device));
            var observer = new ConsoleObserver();
            using var cancel = CancelOnCtrlC.Install(observer);
            using TrainingSetup setup = TrainingSetup.Prepare(c, observer);
            TrainResult result = new KtoTrainer(setup, observer).Run(cancel.Token);
            observer.Done();
            RunOverrides.PrintResult(result, c, ["loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins"]);
            return cancel.IsCancellationRequested ? 130 : 0;
        }));
        return cmd;
    }
}
