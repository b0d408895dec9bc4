using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public sealed class RunHistoryTests
{
    private static readonly RunSpec Spec = new("run-a", "fp", 30, 7, true, 6, 2, 10, "{}");

    private static IRunEvent[] Journal()
    {
        long g1 = GenerationNumbers.First(1), g2 = GenerationNumbers.First(2);
        return
        [
            new RunStarted(Spec), new CoordinatorIncarnated(1),
            new StepCommitted(0, g1 + 1, ["t1"], 1), new StepCommitted(1, g1 + 2, ["t1", "t2"], 2),
            new StepCommitted(2, g1 + 5, ["t1"], 3), // two attempts failed (t2 lost), the third committed by t1
            new CheckpointSaved(3, "out/checkpoint-3", "ab"), new RunPaused(), new RunResumed(),
            new CoordinatorIncarnated(2), new StepCommitted(3, g2 + 1, ["t1", "t3"], 4),
            new EvaluationRecorded(4, new Dictionary<string, double> { ["eval_loss"] = 0.25 }), new RunStopped(),
        ];
    }

    [Fact]
    public void CommitsJoinsLeavesFailedAttemptsCheckpointsAndOperatorActionsAreListed()
    {
        var h = RunHistory.Of(Journal());
        Assert.Equal(
        [
            new(0, "run started", "run-a: 10 steps of 6 examples × 2 micro-batches, 30 examples"),
            new(0, "coordinator", "incarnation 1 (first start)"),
            new(1, "committed", $"generation {GenerationNumbers.First(1) + 1}, members t1"),
            new(2, "committed", $"generation {GenerationNumbers.First(1) + 2}, members t1,t2; joined t2"),
            new(3, "committed", $"generation {GenerationNumbers.First(1) + 5}, members t1; left t2; 2 failed attempt(s) first"),
            new(3, "checkpoint", "out/checkpoint-3"),
            new(3, "paused", "by an operator"),
            new(3, "resumed", "by an operator"),
            new(3, "coordinator", "incarnation 2 (restarted or moved: recovered the journal)"),
            // a new incarnation's first generation is not compared with the last one's
            new(4, "committed", $"generation {GenerationNumbers.First(2) + 1}, members t1,t3; joined t3"),
            new(4, "evaluated", "eval_loss 0.25"),
            new(4, "stopped", "by an operator, for good"),
        ], h);
    }

    [Fact]
    public void SinceLeavesOutWhatCameBefore()
    {
        var h = RunHistory.Of(Journal(), since: 4);
        Assert.Equal(["committed", "evaluated", "stopped"], h.Select(e => e.Event));
        Assert.Empty(RunHistory.Of(Journal(), since: 5));
    }
}
