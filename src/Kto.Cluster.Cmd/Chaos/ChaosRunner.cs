using System.Globalization;
using Akka.Actor;
using Kto.Cluster.Cmd.Cluster;
using Kto.Cluster.Coordinator;
using Kto.Cluster.Core;
using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Cmd.Chaos;

/// <summary>What a chaos run is asked to do.</summary>
/// <param name="RunConfig">The run config (its output_dir is replaced by RUN_DIR/out).</param>
/// <param name="Trainers">Trainer processes.</param>
/// <param name="Seed">Seeds the fault schedule.</param>
/// <param name="Counts">Faults of each kind.</param>
/// <param name="RunDir">Journal, logs, the cluster's and the single process's outputs.</param>
/// <param name="Tolerance">Largest relative L2 distance of the final weights from one process's that passes.</param>
/// <param name="Timeout">The whole run fails if it has not ended by then.</param>
/// <param name="MaxSteps">Overrides the config's max_steps.</param>
/// <param name="FullDeterminism">Run with full_determinism: the final checkpoint must then be byte-identical to one process's.</param>
internal sealed record ChaosOptions(string RunConfig, int Trainers, int Seed, ChaosCounts Counts, string RunDir, double Tolerance, TimeSpan Timeout, int? MaxSteps = null,
    bool FullDeterminism = false);

/// <summary>One injected fault and what followed.</summary>
/// <param name="Fault">The scheduled fault.</param>
/// <param name="Targets">Process names it hit.</param>
/// <param name="AtSeconds">When it was injected (since the start).</param>
/// <param name="ContinuedAtSeconds">When the processes hit were continued (SIGCONT) or, for kills, the last of them started again.</param>
/// <param name="NextCommitSeconds">
/// How long the run took to commit again despite the fault: for a trainer kill or freeze, from the signal to the first
/// commit without the trainers hit or after they were started again or continued; for a coordinator kill, from the kill
/// to the first commit of the next incarnation; for a coordinator freeze, from SIGCONT to the next commit (null: none).
/// Commit times are the coordinator's own stamps.
/// </param>
internal sealed record FaultOutcome(ChaosFault Fault, string[] Targets, double AtSeconds, double? ContinuedAtSeconds, double? NextCommitSeconds);

/// <summary>The result of a chaos run.</summary>
/// <param name="Completed">Whether the run reached its last step.</param>
/// <param name="Audit">The journal audit.</param>
/// <param name="RelativeL2">Relative L2 distance of the final weights from one process's (null: not completed).</param>
/// <param name="Tolerance">The largest distance that passes.</param>
/// <param name="Steps">Steps in the run.</param>
/// <param name="WallSeconds">Seconds from the cluster's start to the end.</param>
/// <param name="Faults">The faults injected and how the run recovered.</param>
/// <param name="Scheduled">Faults scheduled.</param>
/// <param name="IdenticalBytes">Under full_determinism: whether every file of the final checkpoint is byte for byte one
/// process's (null otherwise).</param>
internal sealed record ChaosReport(bool Completed, AuditReport Audit, double? RelativeL2, double Tolerance, int Steps, double WallSeconds, IReadOnlyList<FaultOutcome> Faults,
    int Scheduled, bool? IdenticalBytes = null)
{
    /// <summary>Every scheduled fault injected, the run completed, audited, and within tolerance of one process (under
    /// full_determinism: byte-identical to it).</summary>
    public bool Passed => Faults.Count == Scheduled && Completed && Audit.Ok && RelativeL2 is { } d && d <= Tolerance && IdenticalBytes is null or true;
}

/// <summary>
/// Runs a local cluster (coordinator host + trainer processes, SQLite journal) through a run config while a
/// <see cref="ChaosSchedule"/> kills, freezes and restarts its processes with real signals; then audits the journal
/// (each step committed once, every example of every full epoch once) and compares the final weights with the same
/// config trained by one process.
/// </summary>
internal static class ChaosRunner
{
    /// <summary>Runs it; progress and each fault go to <paramref name="observer"/>.</summary>
    public static async Task<ChaosReport> RunAsync(ChaosOptions o, ITrainingObserver observer, CancellationToken cancel)
    {
        string runDir = Path.GetFullPath(o.RunDir);
        Directory.CreateDirectory(runDir);
        KtoConfig config = KtoConfigReader.Load(o.RunConfig) with { OutputDir = Path.Combine(runDir, "out"), OverwriteOutputDir = true };
        if (o.MaxSteps is { } steps) config = config with { MaxSteps = steps };
        if (o.FullDeterminism) config = config with { FullDeterminism = true };
        string runConfig = Path.Combine(runDir, "run.json");
        AtomicFile.WriteText(runConfig, KtoConfigReader.ToJson(config));
        RunSpec spec = RunSpec.FromConfig("chaos", config, NullObserver.Instance);
        IReadOnlyList<ChaosFault> schedule = ChaosSchedule.Generate(o.Seed, spec.TotalSteps, o.Trainers, o.Counts);
        observer.Info($"chaos: {spec.TotalSteps} steps, {o.Trainers} trainers, {schedule.Count} faults (seed {o.Seed}); run directory {runDir}");

        var launcher = LocalClusterLauncher.Start(new LocalClusterOptions(runConfig, "chaos", o.Trainers, runDir, Supervise: false), observer);
        var outcomes = new List<FaultOutcome>();
        var continued = new Dictionary<int, double>();
        var pending = new List<Task>();
        bool completed = false, holding = false;
        var session = new Lazy<CommandClient.Session>(() => new CommandClient.Session(launcher.CoordinatorAddress));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(o.Timeout);
        try
        {
            _ = session.Value; // opened before the first fault: the hold below must reach the coordinator within a few steps
            foreach (ChaosFault fault in schedule)
            {
                // Each fault comes once the processes the one before hit are back and the run has committed despite
                // it (so its recovery is measured on its own), and at its step.
                bool Back()
                {
                    lock (continued) return outcomes.Count == 0 || continued.ContainsKey(outcomes.Count - 1);
                }
                bool Recovered()
                {
                    if (outcomes.Count == 0) return true;
                    double? thawed;
                    lock (continued) thawed = continued.TryGetValue(outcomes.Count - 1, out double c) ? c : null;
                    FaultOutcome last = outcomes[^1];
                    if (thawed is null) return false; // the processes hit are not back yet
                    return Measure(last with { ContinuedAtSeconds = thawed }, Produced(launcher)).NextCommitSeconds is not null;
                }
                while ((!Recovered() || Committed(launcher) < fault.AtStep) && !deadline.IsCancellationRequested && !launcher.RunEnded)
                {
                    if (holding && Back()) { Release(session, observer); holding = false; }
                    await Task.Delay(50, CancellationToken.None);
                }
                if (holding) { Release(session, observer); holding = false; }
                if (deadline.IsCancellationRequested) break;
                if (launcher.RunEnded)
                {
                    observer.Warn($"chaos: the run ended before {schedule.Count - outcomes.Count} of the faults");
                    break;
                }
                // A target still down from an earlier fault is waited for: every scheduled fault hits a live process.
                string[] targets = fault.Targets.Length == 0 ? ["coordinator"] : [.. fault.Targets.Select(t => $"trainer-{t}")];
                while (!targets.All(launcher.IsRunning) && !deadline.IsCancellationRequested) await Task.Delay(50, CancellationToken.None);
                if (deadline.IsCancellationRequested) break;
                // set before the fault, so it is in place however fast the others then commit
                if (fault.Kind is FaultKind.TrainerKill or FaultKind.TrainerWave or FaultKind.TrainerFreeze)
                    holding = Hold(session, spec.TotalSteps, Committed(launcher), observer);
                double at = Since(launcher, DateTime.UtcNow);
                int index = outcomes.Count;
                string[] hit = await InjectAsync(launcher, fault, pending, () =>
                {
                    lock (continued) continued[index] = Since(launcher, DateTime.UtcNow);
                });
                observer.Info($"chaos: step {fault.AtStep}: {Describe(fault, hit)}");
                outcomes.Add(new FaultOutcome(fault, hit, at, null, null));
                if (holding && hit.Length == 0) { Release(session, observer); holding = false; }
            }
            await Task.WhenAll(pending).WaitAsync(deadline.Token);
            if (holding) { Release(session, observer); holding = false; }
            completed = await launcher.WaitAsync(deadline.Token) == 0 && !deadline.IsCancellationRequested;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            observer.Warn($"chaos: the run did not end within {o.Timeout.TotalMinutes:0} min");
        }
        finally
        {
            if (session.IsValueCreated) session.Value.Dispose();
            await launcher.DisposeAsync();
        }
        var commits = Produced(launcher);
        var measured = outcomes.Select((f, i) => Measure(f with { ContinuedAtSeconds = continued.TryGetValue(i, out double c) ? c : null }, commits)).ToList();

        AuditReport audit = await AuditAsync(runDir, cancel);
        double? distance = null;
        bool? identical = null;
        if (completed && TrainingCheckpoint.Latest(config.OutputDir) is { } final)
        {
            observer.Info("chaos: training the same config in one process for comparison");
            KtoConfig single = config with { OutputDir = Path.Combine(runDir, "single") };
            using (TrainingSetup setup = TrainingSetup.Prepare(single, NullObserver.Instance))
                new KtoTrainer(setup, NullObserver.Instance).Run();
            TrainingCheckpoint.ReadVerified(final);
            string singleFinal = TrainingCheckpoint.Latest(single.OutputDir)!;
            distance = WeightDistance.RelativeL2(WeightDistance.ReadWeights(final), WeightDistance.ReadWeights(singleFinal));
            if (config.FullDeterminism)
            {
                // Every file of the checkpoint: weights (one file or shards), optimizer state, trainer_state.json.
                string[] files = [.. Directory.GetFiles(singleFinal).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)];
                var differ = files.Where(f => !File.Exists(Path.Combine(final, f)) || !File.ReadAllBytes(Path.Combine(final, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(singleFinal, f)))).ToList();
                identical = differ.Count == 0 && Directory.GetFiles(final).Length == files.Length;
                observer.Info(identical == true ? $"chaos: full_determinism: {Path.GetFileName(final)} is byte-identical to one process's ({files.Length} files)"
                    : $"chaos: full_determinism: {Path.GetFileName(final)} differs from one process's: {string.Join(", ", differ)}");
            }
        }
        return new ChaosReport(completed, audit, distance, o.Tolerance, spec.TotalSteps, Since(launcher, DateTime.UtcNow), measured, schedule.Count, identical);
    }

    /// <summary>Seconds from the launcher's start to <paramref name="utc"/>.</summary>
    private static double Since(LocalClusterLauncher launcher, DateTime utc) => (utc - launcher.StartedUtc).TotalSeconds;

    /// <summary>
    /// The commit lines with the time the coordinator wrote them (their "at" stamp), not the time they were read: a
    /// busy machine delays reading by up to a second, in which a tiny model commits dozens of steps.
    /// </summary>
    private static IReadOnlyList<(TimeSpan At, string Line)> Produced(LocalClusterLauncher launcher) => [.. launcher.Commits.Select(c =>
    {
        int at = c.Line.LastIndexOf(" at ", StringComparison.Ordinal);
        DateTime stamp = DateTime.Parse(c.Line[(at + 4)..], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
        return (TimeSpan.FromSeconds(Since(launcher, stamp)), c.Line);
    })];

    /// <summary>Fills in <see cref="FaultOutcome.NextCommitSeconds"/> from the coordinator's commit lines.</summary>
    private static FaultOutcome Measure(FaultOutcome f, IReadOnlyList<(TimeSpan At, string Line)> commits)
    {
        static string Members(string line) => line.Split(" members ")[1].Split(' ')[0];
        static long Generation(string line) => long.Parse(line.Split(" generation ")[1].Split(' ')[0], CultureInfo.InvariantCulture);
        double from = f.AtSeconds;
        Func<string, bool> counts;
        switch (f.Fault.Kind)
        {
            case FaultKind.CoordinatorFreeze:
                from = f.ContinuedAtSeconds ?? f.AtSeconds;
                counts = _ => true;
                break;
            case FaultKind.CoordinatorKill:
                int before = commits.LastOrDefault(c => c.At.TotalSeconds <= f.AtSeconds) is { Line: not null } last ? GenerationNumbers.IncarnationOf(Generation(last.Line)) : 0;
                counts = line => GenerationNumbers.IncarnationOf(Generation(line)) > before;
                break;
            default:
                // the first commit that does not depend on the processes hit: one without them, or one after they
                // were continued or started again (the old processes are gone or awake by then)
                string[] ids = [.. f.Targets.Select(t => "t" + t["trainer-".Length..])];
                double back = f.ContinuedAtSeconds ?? double.MaxValue;
                counts = line => !Members(line).Split(',').Intersect(ids).Any();
                return f with
                {
                    NextCommitSeconds = commits.Where(c => c.At.TotalSeconds > from && (c.At.TotalSeconds > back || counts(c.Line)))
                        .Select(c => (double?)(c.At.TotalSeconds - from)).FirstOrDefault(),
                };
        }
        double? next = commits.Where(c => c.At.TotalSeconds > from && counts(c.Line)).Select(c => (double?)(c.At.TotalSeconds - from)).FirstOrDefault();
        return f with { NextCommitSeconds = next };
    }

    /// <summary>Steps before the end at which the runner holds the run for a fault's recovery: 15 % (faults sit at 5–80 %).</summary>
    private static int HoldMargin(int totalSteps) => Math.Max(2, totalSteps * 15 / 100);

    /// <summary>
    /// After a trainer fault the other trainers go on, and the steps of a small run take milliseconds while a restarted
    /// process takes seconds: the run could end before the processes hit are back, and the faults after this one would
    /// never come. The coordinator is told to pause at <see cref="HoldMargin"/> steps before the end (as an operator
    /// would: <c>kto HOST:PORT run pause --at STEPS</c>), so the hold does not depend on how fast this process reads the
    /// commits; <see cref="Release"/> lifts it once they are back. Returns whether a hold was set.
    /// </summary>
    private static bool Hold(Lazy<CommandClient.Session> session, int totalSteps, int committed, ITrainingObserver observer)
    {
        int at = totalSteps - HoldMargin(totalSteps);
        CommandReply? reply = committed < at ? session.Value.Send("run", "pause", "--at", at.ToString(CultureInfo.InvariantCulture)) : session.Value.Send("run", "pause");
        bool done = reply is { Ok: true };
        observer.Info(done ? $"chaos: the run holds at {Math.Max(at, committed)} committed steps until the processes hit are back ({reply!.Text})"
            : $"chaos: no hold for the fault's recovery ({reply?.Text ?? "no answer"})");
        return done;
    }

    /// <summary>
    /// Lifts the hold (<c>run resume</c>: resumes the run if it reached the point, else cancels the point); asks up to 5
    /// times, a second apart, while the coordinator does not answer.
    /// </summary>
    private static void Release(Lazy<CommandClient.Session> session, ITrainingObserver observer)
    {
        for (int attempt = 1; ; attempt++)
        {
            CommandReply? reply = session.Value.Send("run", "resume");
            if (reply is { Ok: true }) observer.Info($"chaos: the processes hit are back: {reply.Text}");
            else if (reply is null && attempt < 5)
            {
                Thread.Sleep(1000);
                continue;
            }
            else observer.Warn($"chaos: run resume not done ({reply?.Text ?? "no answer"})");
            return;
        }
    }

    private static int Committed(LocalClusterLauncher launcher)
    {
        var commits = launcher.Commits;
        if (commits.Count == 0) return 0;
        string[] words = commits[^1].Line.Split(' ');
        return int.Parse(words[1].Split('/')[0], CultureInfo.InvariantCulture);
    }

    /// <summary>Injects <paramref name="fault"/>; the restart or continue it schedules is added to <paramref name="pending"/>. Returns the process names hit.</summary>
    private static async Task<string[]> InjectAsync(LocalClusterLauncher launcher, ChaosFault fault, List<Task> pending, Action onContinued)
    {
        switch (fault.Kind)
        {
            case FaultKind.CoordinatorKill:
                if (!launcher.IsRunning("coordinator")) return [];
                launcher.Kill("coordinator");
                pending.Add(Later(fault.Delay, () =>
                {
                    launcher.Restart("coordinator");
                    onContinued();
                }));
                return ["coordinator"];
            case FaultKind.CoordinatorFreeze:
                if (!launcher.IsRunning("coordinator")) return [];
                launcher.Freeze("coordinator", true);
                pending.Add(Later(fault.Delay, () =>
                {
                    launcher.Freeze("coordinator", false);
                    onContinued();
                }));
                return ["coordinator"];
            case FaultKind.TrainerFreeze:
            {
                string name = $"trainer-{fault.Targets[0]}";
                if (!launcher.IsRunning(name)) return [];
                launcher.Freeze(name, true);
                pending.Add(Later(fault.Delay, () =>
                {
                    launcher.Freeze(name, false);
                    onContinued();
                }));
                return [name];
            }
            default:
            {
                var hit = new List<string>();
                for (int i = 0; i < fault.Targets.Length; i++)
                {
                    if (i > 0) await Task.Delay(fault.Spacing[i - 1]);
                    string name = $"trainer-{fault.Targets[i]}";
                    if (!launcher.IsRunning(name)) continue;
                    launcher.Kill(name);
                    hit.Add(name);
                    pending.Add(Later(fault.Delay, () =>
                    {
                        launcher.Restart(name);
                        onContinued();
                    }));
                }
                return [.. hit];
            }
        }
    }

    private static async Task Later(TimeSpan delay, Action action)
    {
        await Task.Delay(delay);
        action();
    }

    private static string Describe(ChaosFault f, string[] hit) => hit.Length == 0
        ? $"{f.Kind} skipped (its target is already down)"
        : f.Kind switch
        {
            FaultKind.TrainerFreeze or FaultKind.CoordinatorFreeze => $"SIGSTOP {string.Join(", ", hit)} for {f.Delay.TotalSeconds:0.0} s",
            _ => $"SIGKILL {string.Join(", ", hit)}, restarted after {f.Delay.TotalSeconds:0.0} s",
        };

    private static async Task<AuditReport> AuditAsync(string runDir, CancellationToken cancel)
    {
        var hocon = PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(runDir, PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider);
        using ActorSystem system = ActorSystem.Create("kto-audit", hocon);
        try
        {
            return JournalAudit.Check(await JournalReader.ReadAsync(system, "chaos", cancel), requireComplete: true);
        }
        finally
        {
            await system.Terminate();
        }
    }
}
