using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public class RunStateTests
{
    internal static readonly RunSpec Spec = new("run-1", "fp", ExampleCount: 10, Seed: 3, Shuffle: true, GlobalBatchSize: 4, Accumulation: 1, TotalSteps: 6, ConfigJson: "{}");

    private static StepCommitted Commit(int step, long generation) => new(step, generation, ["a", "b"], 42);

    [Fact]
    public void StepsCommitInOrderExactlyOnce()
    {
        var s = RunState.Replay([new RunStarted(Spec), new CoordinatorIncarnated(1), Commit(0, GenerationNumbers.First(1)), Commit(1, GenerationNumbers.First(1) + 1)]);
        Assert.Equal(2, s.CommittedSteps);
        Assert.Equal(RunPhase.Running, s.Phase);
        Assert.True(s.AcceptsSteps);
        Assert.Throws<InvalidOperationException>(() => s.Apply(Commit(1, GenerationNumbers.First(1) + 2)));   // twice
        Assert.Throws<InvalidOperationException>(() => s.Apply(Commit(3, GenerationNumbers.First(1) + 2)));   // skipping 2
        Assert.Throws<InvalidOperationException>(() => s.Apply(Commit(2, GenerationNumbers.First(1))));       // stale generation
    }

    [Fact]
    public void NothingHappensBeforeTheRunStartsAndItStartsOnce()
    {
        Assert.Throws<InvalidOperationException>(() => RunState.Empty.Apply(Commit(0, 1)));
        Assert.Throws<InvalidOperationException>(() => RunState.Empty.Apply(new RunPaused()));
        var s = RunState.Empty.Apply(new RunStarted(Spec));
        Assert.Throws<InvalidOperationException>(() => s.Apply(new RunStarted(Spec)));
    }

    [Fact]
    public void PauseResumeStopAndComplete()
    {
        var s = RunState.Empty.Apply(new RunStarted(Spec)).Apply(new RunPaused());
        Assert.False(s.AcceptsSteps);
        Assert.Throws<InvalidOperationException>(() => s.Apply(Commit(0, 1)));
        s = s.Apply(new RunResumed());
        for (int i = 0; i < Spec.TotalSteps; i++) s = s.Apply(Commit(i, i + 1));
        Assert.False(s.AcceptsSteps);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new RunCompleted(5)));
        s = s.Apply(new RunCompleted(6));
        Assert.Equal(RunPhase.Completed, s.Phase);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new RunStopped()));
    }

    [Fact]
    public void CheckpointsFollowCommittedSteps()
    {
        var s = RunState.Empty.Apply(new RunStarted(Spec)).Apply(Commit(0, 1)).Apply(Commit(1, 2));
        s = s.Apply(new CheckpointSaved(2, "/c/checkpoint-2", "h"));
        Assert.Equal(2, s.LatestCheckpoint!.Step);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new CheckpointSaved(3, "/c/checkpoint-3", "h")));  // not committed yet
        Assert.Throws<InvalidOperationException>(() => s.Apply(new CheckpointSaved(1, "/c/checkpoint-1", "h")));  // older than newest
    }

    [Fact]
    public void IncarnationsOnlyGrowAndNumberGenerations()
    {
        var s = RunState.Empty.Apply(new CoordinatorIncarnated(1)).Apply(new CoordinatorIncarnated(2));
        Assert.Throws<InvalidOperationException>(() => s.Apply(new CoordinatorIncarnated(2)));
        Assert.True(GenerationNumbers.First(3) > GenerationNumbers.Next(GenerationNumbers.First(2) + 1000));
        Assert.Equal(3, GenerationNumbers.IncarnationOf(GenerationNumbers.Next(GenerationNumbers.First(3))));
    }

    [Fact]
    public void DifferencesBetweenSpecsNameTheConfigKeysAndTheData()
    {
        RunSpec a = Spec with { ConfigJson = """{"learning_rate": 0.0001, "max_steps": 50, "beta": 0.1}""" };
        Assert.Empty(a.Differences(a with { }));
        RunSpec b = a with { ConfigJson = """{"learning_rate": 0.0003, "max_steps": 60, "beta": 0.1}""", TotalSteps = 60 };
        Assert.Equal(["learning_rate", "max_steps"], b.Differences(a));
        Assert.Equal(["dataset contents", "reference weights"], a.Differences(a with { DatasetFingerprint = "other", ReferenceHash = "abc" }));
        Assert.Equal(["warmup_steps"], a.Differences(a with { ConfigJson = """{"learning_rate": 0.0001, "max_steps": 50, "beta": 0.1, "warmup_steps": 5}""" }));
        Assert.Equal(["batch plan"], a.Differences(a with { Seed = 9 }));
    }

    [Fact]
    public void ARunContinuesFromACheckpointOnlyRightAfterItStarted()
    {
        var started = RunState.Empty.Apply(new RunStarted(Spec)).Apply(new CoordinatorIncarnated(1));
        var s = started.Apply(new RunStartedFromCheckpoint(4, "/old/checkpoint-4", "h"));
        Assert.Equal(4, s.CommittedSteps);
        Assert.Equal(4, s.FirstStep);
        Assert.Equal(4, RunSnapshot.Of(s).ToState().FirstStep);
        Assert.Equal(4, s.LatestCheckpoint!.Step);
        s = s.Apply(Commit(4, GenerationNumbers.First(1)));
        Assert.Equal(5, s.CommittedSteps);
        Assert.Throws<InvalidOperationException>(() => s.Apply(new RunStartedFromCheckpoint(4, "/old/checkpoint-4", "h")));        // not after steps
        Assert.Throws<InvalidOperationException>(() => started.Apply(new RunStartedFromCheckpoint(Spec.TotalSteps, "/c", "h"))); // nothing left to train
        Assert.Throws<InvalidOperationException>(() => RunState.Empty.Apply(new RunStartedFromCheckpoint(2, "/c", "h")));        // no run

        var events = new List<IRunEvent> { new RunStarted(Spec), new CoordinatorIncarnated(1), new RunStartedFromCheckpoint(4, "/c", "h") };
        events.Add(Commit(4, GenerationNumbers.First(1)));
        events.Add(Commit(5, GenerationNumbers.First(1) + 1));
        Assert.True(JournalAudit.Check(events, requireComplete: true).Ok);
        events.Insert(3, Commit(3, GenerationNumbers.First(1) - 1));
        Assert.False(JournalAudit.Check(events, requireComplete: true).Ok); // a step the checkpoint holds, committed again
    }
}
