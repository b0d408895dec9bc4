namespace Kto.Domain.Cluster;

/// <summary>The result of <see cref="JournalAudit.Check"/>.</summary>
/// <param name="Ok">True when every planned step was committed exactly once, in order.</param>
/// <param name="Committed">Steps committed.</param>
/// <param name="Problems">What is wrong, one line each.</param>
public sealed record AuditReport(bool Ok, int Committed, IReadOnlyList<string> Problems);

/// <summary>
/// Reads a run's journal and checks the exactly-once claim directly (independently of <see cref="RunState"/>'s own
/// guards): each step 0 … committed−1 appears in exactly one <see cref="StepCommitted"/>, the generations grow, and
/// with the spec's plan every global batch of every epoch is covered once.
/// </summary>
public static class JournalAudit
{
    /// <summary>Audits <paramref name="events"/>; <paramref name="requireComplete"/> also demands all planned steps.</summary>
    public static AuditReport Check(IEnumerable<IRunEvent> events, bool requireComplete)
    {
        var problems = new List<string>();
        RunSpec? spec = null;
        int first = 0;
        var commits = new List<StepCommitted>();
        foreach (IRunEvent e in events)
        {
            if (e is RunStarted s) spec = s.Spec;
            else if (e is RunStartedFromCheckpoint f) first = f.Step;
            else if (e is StepCommitted c) commits.Add(c);
        }
        if (spec is null) return new AuditReport(false, 0, ["no RunStarted event"]);

        foreach (var g in commits.GroupBy(c => c.Step).Where(g => g.Count() > 1))
            problems.Add($"step {g.Key} committed {g.Count()} times");
        // A run continued from a checkpoint counts its steps as committed: they are in the journal of the run that wrote it.
        int[] steps = [.. Enumerable.Range(0, first).Concat(commits.Select(c => c.Step)).Distinct().Order()];
        foreach (StepCommitted c in commits.Where(c => c.Step < first)) problems.Add($"step {c.Step} committed although the checkpoint the run continued from holds it");
        for (int i = 0; i < steps.Length; i++)
            if (steps[i] != i) { problems.Add($"step {i} missing before step {steps[i]}"); break; }
        for (int i = 1; i < commits.Count; i++)
            if (commits[i].Generation <= commits[i - 1].Generation) problems.Add($"generation did not grow at step {commits[i].Step}");
        if (requireComplete && steps.Length != spec.TotalSteps)
            problems.Add($"{steps.Length} of {spec.TotalSteps} steps committed");

        // Every example of every full epoch is trained exactly once by the committed steps.
        Training.BatchPlan plan = spec.Plan();
        int fullEpochs = steps.Length / plan.StepsPerEpoch;
        for (int epoch = 0; epoch < fullEpochs; epoch++)
        {
            var seen = Enumerable.Range(epoch * plan.StepsPerEpoch, plan.StepsPerEpoch).SelectMany(plan.Step).SelectMany(b => b).ToList();
            if (seen.Count != spec.ExampleCount || seen.Distinct().Count() != spec.ExampleCount)
                problems.Add($"epoch {epoch}: the committed batches do not cover every example exactly once");
        }
        return new AuditReport(problems.Count == 0, steps.Length, problems);
    }
}
