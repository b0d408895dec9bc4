namespace Kto.Cluster.Cmd.Chaos;

/// <summary>Kinds of fault a chaos run injects, all with real signals to real processes.</summary>
public enum FaultKind
{
    /// <summary>SIGKILL one trainer; restarted under the same id after <see cref="ChaosFault.Delay"/>.</summary>
    TrainerKill,

    /// <summary>SIGKILL 2–3 trainers within a second (a power strip, a preempted batch); each restarted after its delay.</summary>
    TrainerWave,

    /// <summary>SIGSTOP one trainer for <see cref="ChaosFault.Delay"/>, then SIGCONT.</summary>
    TrainerFreeze,

    /// <summary>SIGKILL the coordinator host; restarted after <see cref="ChaosFault.Delay"/>.</summary>
    CoordinatorKill,

    /// <summary>SIGSTOP the coordinator host for <see cref="ChaosFault.Delay"/>, then SIGCONT.</summary>
    CoordinatorFreeze,
}

/// <summary>One fault of a schedule.</summary>
/// <param name="AtStep">Injected once the run has committed this many steps.</param>
/// <param name="Kind">What is done.</param>
/// <param name="Targets">Trainer slots (1-based) for trainer faults; for a wave, in kill order; empty for coordinator faults.</param>
/// <param name="Delay">How long until a killed process is restarted, or a frozen one continued.</param>
/// <param name="Spacing">For a wave: the pause before each kill after the first (all within a second).</param>
public sealed record ChaosFault(int AtStep, FaultKind Kind, int[] Targets, TimeSpan Delay, TimeSpan[] Spacing);

/// <summary>How many faults of each kind a schedule holds.</summary>
/// <param name="TrainerKills">Single trainer kills.</param>
/// <param name="TrainerWaves">Waves of 2–3 trainer kills (needs at least 2 trainers).</param>
/// <param name="TrainerFreezes">Trainer freezes of 3–15 s.</param>
/// <param name="CoordinatorKills">Coordinator kills, restarted after 0–5 s.</param>
/// <param name="CoordinatorFreezes">Coordinator freezes of 5–25 s.</param>
public sealed record ChaosCounts(int TrainerKills, int TrainerWaves, int TrainerFreezes, int CoordinatorKills, int CoordinatorFreezes)
{
    /// <summary>No faults: the baseline drift of the same run.</summary>
    public static readonly ChaosCounts None = new(0, 0, 0, 0, 0);

    /// <summary>The CI form: one of each (a wave of 2–3 included).</summary>
    public static readonly ChaosCounts Short = new(1, 1, 1, 1, 1);

    /// <summary>The long form: at least 20 trainer kills (singles plus waves) and 3 coordinator kills.</summary>
    public static readonly ChaosCounts Long = new(10, 6, 6, 3, 3);

    /// <summary>All faults.</summary>
    public int Total => TrainerKills + TrainerWaves + TrainerFreezes + CoordinatorKills + CoordinatorFreezes;
}

/// <summary>
/// A seeded fault schedule over a run: the same seed, counts, step count and trainer count give the same faults, so a
/// failing chaos run can be repeated (the runner injects each fault at its step, once the run has committed despite
/// the fault before). Faults sit at distinct committed-step marks spread over 5–80 % of the run, in a
/// seeded random order of kinds; delays are drawn from the ranges the churn issue names (trainers restarted after
/// 0–5 s, frozen 3–15 s; the coordinator restarted after 0–5 s, frozen 5–25 s).
/// </summary>
public static class ChaosSchedule
{
    /// <summary>Trainer restart delay range (seconds).</summary>
    public static readonly (double Min, double Max) TrainerRestart = (0, 5);

    /// <summary>Trainer freeze range (seconds).</summary>
    public static readonly (double Min, double Max) TrainerFreeze = (3, 15);

    /// <summary>Coordinator restart delay range (seconds).</summary>
    public static readonly (double Min, double Max) CoordinatorRestart = (0, 5);

    /// <summary>Coordinator freeze range (seconds).</summary>
    public static readonly (double Min, double Max) CoordinatorFreeze = (5, 25);

    /// <summary>The schedule for <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentException">Fewer steps than faults, no trainers, or waves with fewer than 2 trainers.</exception>
    public static IReadOnlyList<ChaosFault> Generate(int seed, int totalSteps, int trainers, ChaosCounts counts)
    {
        if (trainers < 1) throw new ArgumentException("a chaos run needs at least one trainer");
        if (counts.TrainerWaves > 0 && trainers < 2) throw new ArgumentException("waves of trainer kills need at least 2 trainers");
        int first = Math.Max(1, totalSteps * 5 / 100), last = Math.Max(first, totalSteps * 80 / 100);
        if (last - first + 1 < counts.Total) throw new ArgumentException($"{counts.Total} faults need at least {counts.Total} steps between 5 % and 80 % of the run; it has {totalSteps} steps");
        var random = new Random(seed);
        var kinds = new List<FaultKind>();
        kinds.AddRange(Enumerable.Repeat(FaultKind.TrainerKill, counts.TrainerKills));
        kinds.AddRange(Enumerable.Repeat(FaultKind.TrainerWave, counts.TrainerWaves));
        kinds.AddRange(Enumerable.Repeat(FaultKind.TrainerFreeze, counts.TrainerFreezes));
        kinds.AddRange(Enumerable.Repeat(FaultKind.CoordinatorKill, counts.CoordinatorKills));
        kinds.AddRange(Enumerable.Repeat(FaultKind.CoordinatorFreeze, counts.CoordinatorFreezes));
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(kinds));
        int[] steps = [.. Enumerable.Range(first, last - first + 1).OrderBy(_ => random.Next()).Take(kinds.Count).Order()];

        TimeSpan Draw((double Min, double Max) range) => TimeSpan.FromSeconds(Math.Round(range.Min + random.NextDouble() * (range.Max - range.Min), 1));
        int Slot() => random.Next(1, trainers + 1);
        var faults = new List<ChaosFault>();
        for (int i = 0; i < kinds.Count; i++)
        {
            FaultKind kind = kinds[i];
            faults.Add(kind switch
            {
                FaultKind.TrainerKill => new ChaosFault(steps[i], kind, [Slot()], Draw(TrainerRestart), []),
                FaultKind.TrainerWave => Wave(steps[i]),
                FaultKind.TrainerFreeze => new ChaosFault(steps[i], kind, [Slot()], Draw(TrainerFreeze), []),
                FaultKind.CoordinatorKill => new ChaosFault(steps[i], kind, [], Draw(CoordinatorRestart), []),
                _ => new ChaosFault(steps[i], kind, [], Draw(CoordinatorFreeze), []),
            });
        }
        return faults;

        ChaosFault Wave(int step)
        {
            int size = Math.Min(trainers, random.Next(2, 4));
            int[] targets = [.. Enumerable.Range(1, trainers).OrderBy(_ => random.Next()).Take(size)];
            // all kills within one second: pauses that add up to less than 1 s
            TimeSpan[] spacing = [.. Enumerable.Range(0, size - 1).Select(_ => TimeSpan.FromMilliseconds(random.Next(0, 1000 / size)))];
            return new ChaosFault(step, FaultKind.TrainerWave, targets, Draw(TrainerRestart), spacing);
        }
    }
}
