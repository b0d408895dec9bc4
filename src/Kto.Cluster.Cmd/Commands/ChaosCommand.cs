using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Kto.Cluster.Cmd.Chaos;
using Kto.Cluster.Cmd.Terminal;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto chaos RUN_CONFIG</c>: a local cluster trains the config while a seeded schedule SIGKILLs and SIGSTOPs its
/// trainers and its coordinator host; passes when the run completes, the journal audit holds and the final weights
/// are within <c>--tolerance</c> of one process's. Prints every fault, then one JSON line.
/// </summary>
internal static class ChaosCommand
{
    /// <summary>Default tolerance: relative L2 of the final weights from one process's (docs/cluster.md, "Chaos").</summary>
    public const double DefaultTolerance = 1e-4;

    public static Command Create()
    {
        var config = new Argument<FileInfo>("run-config") { Description = "run config (kto train's keys); its output_dir is replaced by RUN_DIR/out" };
        var trainers = new Option<int>("--trainers") { Description = "trainer processes", DefaultValueFactory = _ => 3 };
        var seed = new Option<int>("--seed") { Description = "seeds the fault schedule (the same seed repeats it)", DefaultValueFactory = _ => 1 };
        var form = new Option<string>("--faults") { Description = "short: one fault of each kind (CI); long: 10 single and 6 waves of trainer kills, 6 trainer freezes, 3 coordinator kills, 3 coordinator freezes; none: the same run without faults (its drift from one process is the baseline)", DefaultValueFactory = _ => "short" };
        form.AcceptOnlyFromAmong("short", "long", "none");
        var runDir = new Option<string?>("--run-dir") { Description = "journal, logs and outputs (default: runs/chaos/SEED); emptied first" };
        var tolerance = new Option<double>("--tolerance") { Description = "largest relative L2 distance of the final weights from one process's that passes", DefaultValueFactory = _ => DefaultTolerance };
        var maxSteps = new Option<int?>("--max-steps") { Description = "override the config's max_steps (the long form needs a longer run: every fault waits for the run to recover from the one before)" };
        var determinism = new Option<bool>("--full-determinism") { Description = "train with full_determinism: the final checkpoint must be byte-identical to one process's" };
        var timeout = new Option<int>("--timeout-min") { Description = "fail if the run has not ended after this many minutes", DefaultValueFactory = _ => 30 };
        var cmd = new Command("chaos", "train on a local cluster while trainers and the coordinator host are killed, frozen and restarted on a seeded schedule; audit and compare with one process")
        {
            config, trainers, seed, form, runDir, tolerance, maxSteps, timeout, determinism,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            FileInfo file = parse.GetValue(config)!;
            if (!file.Exists) throw new FileNotFoundException($"{file.FullName}: run config not found", file.FullName);
            int s = parse.GetValue(seed);
            string dir = parse.GetValue(runDir) ?? Path.Combine("runs", "chaos", s.ToString(CultureInfo.InvariantCulture));
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            var options = new ChaosOptions(file.FullName, parse.GetValue(trainers), s, parse.GetValue(form) switch { "long" => ChaosCounts.Long, "none" => ChaosCounts.None, _ => ChaosCounts.Short }, dir,
                parse.GetValue(tolerance), TimeSpan.FromMinutes(parse.GetValue(timeout)), parse.GetValue(maxSteps), parse.GetValue(determinism));
            var observer = new ConsoleObserver();
            var (stop, signals) = CommonOptions.CancelOnSignals();
            using IDisposable signalScope = signals;
            ChaosReport report;
            try
            {
                report = ChaosRunner.RunAsync(options, observer, stop.Token).GetAwaiter().GetResult();
            }
            finally
            {
                observer.Done();
            }
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                passed = report.Passed,
                completed = report.Completed,
                audit_ok = report.Audit.Ok,
                audit_problems = report.Audit.Problems,
                steps = report.Steps,
                faults_scheduled = report.Scheduled,
                relative_l2 = report.RelativeL2,
                identical_bytes = report.IdenticalBytes,
                tolerance = report.Tolerance,
                wall_seconds = Math.Round(report.WallSeconds, 1),
                faults = report.Faults.Select(f => new
                {
                    kind = f.Fault.Kind.ToString(),
                    at_step = f.Fault.AtStep,
                    targets = f.Targets,
                    delay_seconds = f.Fault.Delay.TotalSeconds,
                    at_seconds = Math.Round(f.AtSeconds, 1),
                    continued_at_seconds = f.ContinuedAtSeconds is { } c ? Math.Round(c, 1) : (double?)null,
                    next_commit_seconds = f.NextCommitSeconds is { } n ? Math.Round(n, 2) : (double?)null,
                }),
            }));
            return report.Passed ? 0 : 1;
        }));
        return cmd;
    }
}
