using System.CommandLine;
using Kto.Cluster.Cmd.Cluster;
using Kto.Cluster.Cmd.Terminal;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto up RUN_CONFIG</c>: a local cluster (coordinator + N trainer processes on loopback) runs a run config to its end.</summary>
internal static class UpCommand
{
    public static Command Create()
    {
        var config = new Argument<FileInfo>("run-config") { Description = "run config (kto train's keys; per_device_train_batch_size is the global batch the trainers share)" };
        var trainers = new Option<int>("--trainers") { Description = "trainer processes", DefaultValueFactory = _ => 2 };
        var runId = new Option<string?>("--run-id") { Description = "names the run and its journal (default: the config's file name); the same id resumes it" };
        var runDir = new Option<string?>("--run-dir") { Description = "journal, host configs and logs (default: runs/cluster/RUN_ID)" };
        var port = new Option<int>("--port") { Description = "the coordinator's Akka port (0 = a free port)", DefaultValueFactory = _ => 0 };
        var postgres = new Option<string?>("--postgres") { Description = "Npgsql connection string: keep the journal in PostgreSQL instead of SQLite" };
        var scorers = new Option<int?>("--scorers") { Description = "reference scorer processes (default: 1 when the run config sets precompute_ref_log_probs, else 0)" };
        var cmd = new Command("up", "run a local cluster — a coordinator and N trainer processes on loopback — through a run config, then shut it down")
        {
            config, trainers, runId, runDir, port, postgres, scorers,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            FileInfo file = parse.GetValue(config)!;
            if (!file.Exists) throw new FileNotFoundException($"{file.FullName}: run config not found", file.FullName);
            string id = parse.GetValue(runId) ?? Path.GetFileNameWithoutExtension(file.Name);
            var options = new LocalClusterOptions(file.FullName, id, parse.GetValue(trainers), parse.GetValue(runDir) ?? Path.Combine("runs", "cluster", id),
                parse.GetValue(port), parse.GetValue(postgres), parse.GetValue(scorers));
            var observer = new ConsoleObserver();
            var (stop, signals) = CommonOptions.CancelOnSignals();
            using IDisposable signalScope = signals;
            int exit;
            var launcher = LocalClusterLauncher.Start(options, observer);
            try
            {
                exit = launcher.WaitAsync(stop.Token).GetAwaiter().GetResult();
            }
            finally
            {
                launcher.DisposeAsync().AsTask().GetAwaiter().GetResult();
                observer.Done();
            }
            if (stop.IsCancellationRequested) return 130;
            if (exit != 0) observer.Warn($"the coordinator exited with code {exit}; logs in {Path.Combine(Path.GetFullPath(options.RunDir), "logs")}");
            return exit;
        }));
        return cmd;
    }
}
