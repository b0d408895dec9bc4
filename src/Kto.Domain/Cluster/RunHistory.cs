using System.Globalization;

namespace Kto.Domain.Cluster;

/// <summary>One line of a run's history (<c>kto HOST:PORT run history</c>).</summary>
/// <param name="Step">Committed steps when it happened (for a commit: the step it committed, 1-based as in the log lines).</param>
/// <param name="Event">What happened: <c>run started</c>, <c>coordinator</c>, <c>committed</c>, <c>checkpoint</c>, <c>evaluated</c>, <c>paused</c>, <c>resumed</c>, <c>stopped</c>, <c>completed</c>.</param>
/// <param name="Details">The rest, in words.</param>
public sealed record HistoryEntry(int Step, string Event, string Details);

/// <summary>
/// A run's history read from its journal: every committed step with its generation and members, who joined and who
/// left between two commits, how many attempts of a step failed before it committed (the generation counts every
/// attempt), checkpoints, evaluations, coordinator incarnations (starts and restarts) and the operator's pause, resume
/// and stop.
/// </summary>
public static class RunHistory
{
    /// <summary>The history of <paramref name="events"/> (in journal order), from <paramref name="since"/> committed steps on.</summary>
    /// <param name="events">The run's journal.</param>
    /// <param name="since">Entries whose step is below this are left out (0: everything).</param>
    public static IReadOnlyList<HistoryEntry> Of(IEnumerable<IRunEvent> events, int since = 0)
    {
        var entries = new List<HistoryEntry>();
        int committed = 0;
        IReadOnlyList<string>? members = null;
        long? lastGeneration = null;
        foreach (IRunEvent e in events)
        {
            switch (e)
            {
                case RunStarted s:
                    entries.Add(new(committed, "run started", string.Create(CultureInfo.InvariantCulture,
                        $"{s.Spec.RunId}: {s.Spec.TotalSteps} steps of {s.Spec.GlobalBatchSize} examples × {s.Spec.Accumulation} micro-batches, {s.Spec.ExampleCount} examples")));
                    break;
                case RunStartedFromCheckpoint c:
                    committed = c.Step;
                    entries.Add(new(committed, "run started", $"from checkpoint {c.Path} ({c.Step} steps)"));
                    break;
                case CoordinatorIncarnated i:
                    entries.Add(new(committed, "coordinator", string.Create(CultureInfo.InvariantCulture,
                        $"incarnation {i.Incarnation}{(i.Incarnation == 1 ? " (first start)" : " (restarted or moved: recovered the journal)")}{(i.Writer is { } w ? $" on {w}" : "")}")));
                    break;
                case StepCommitted c:
                {
                    committed = c.Step + 1;
                    var details = new List<string> { string.Create(CultureInfo.InvariantCulture, $"generation {c.Generation}, members {string.Join(",", c.Members)}") };
                    if (members is not null)
                    {
                        var joined = c.Members.Except(members, StringComparer.Ordinal).ToList();
                        var left = members.Except(c.Members, StringComparer.Ordinal).ToList();
                        if (joined.Count > 0) details.Add($"joined {string.Join(",", joined)}");
                        if (left.Count > 0) details.Add($"left {string.Join(",", left)}");
                    }
                    if (lastGeneration is { } g && GenerationNumbers.IncarnationOf(g) == GenerationNumbers.IncarnationOf(c.Generation) && c.Generation - g > 1)
                        details.Add(string.Create(CultureInfo.InvariantCulture, $"{c.Generation - g - 1} failed attempt(s) first"));
                    entries.Add(new(committed, "committed", string.Join("; ", details)));
                    members = c.Members;
                    lastGeneration = c.Generation;
                    break;
                }
                case CheckpointSaved c:
                    entries.Add(new(c.Step, "checkpoint", c.Path));
                    break;
                case EvaluationRecorded v:
                    entries.Add(new(v.Step, "evaluated", string.Join(", ", v.Figures.OrderBy(f => f.Key, StringComparer.Ordinal)
                        .Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Key} {f.Value:0.######}")))));
                    break;
                case RunPaused:
                    entries.Add(new(committed, "paused", "by an operator"));
                    break;
                case RunResumed:
                    entries.Add(new(committed, "resumed", "by an operator"));
                    break;
                case RunStopped:
                    entries.Add(new(committed, "stopped", "by an operator, for good"));
                    break;
                case RunCompleted d:
                    entries.Add(new(committed, "completed", string.Create(CultureInfo.InvariantCulture, $"{d.Steps} steps")));
                    break;
            }
        }
        return [.. entries.Where(h => h.Step >= since)];
    }
}
