using Akka.Actor;
using Akka.TestKit;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>
/// The coordinator's step driver against test probes standing in for trainers (on a real SQLite journal): the protocol
/// order, and the end of a run whose checkpoint writer was lost right after the last commit.
/// </summary>
public sealed class StepDriverTests : Akka.TestKit.Xunit2.TestKit, IDisposable
{
    private static readonly string Dir = Directory.CreateTempSubdirectory("kto-driver-").FullName;
    private readonly string _out = Path.Combine(Dir, Guid.NewGuid().ToString("N")[..8]);

    public StepDriverTests()
        : base(PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(Dir, Guid.NewGuid().ToString("N")[..8] + ".db")), PersistenceConfig.SqliteProvider))
    {
    }

    private RunSpec Spec(int steps) => new("run-" + Guid.NewGuid().ToString("N")[..8], "fp", ExampleCount: 8, Seed: 1, Shuffle: false, GlobalBatchSize: 4, Accumulation: 1,
        TotalSteps: steps, ConfigJson: $$"""{"model_name_or_path": "m", "dataset_path": "d.jsonl", "output_dir": {{System.Text.Json.JsonSerializer.Serialize(_out)}}, "save_steps": 100, "logging_steps": 1, "max_steps": {{steps}}}""");

    /// <summary>A probe registered as trainer <paramref name="id"/> holding step 0.</summary>
    private TestProbe Trainer(IActorRef coordinator, string id)
    {
        var probe = CreateTestProbe();
        probe.Send(coordinator, new RegisterTrainer(id, "127.0.0.1:1", 0));
        probe.ExpectMsg<TrainerRegistered>(TimeSpan.FromSeconds(10));
        return probe;
    }

    private static (int Step, long Generation) Reduce(TestProbe trainer, IActorRef coordinator, string id)
    {
        var start = trainer.ExpectMsg<StepStart>(TimeSpan.FromSeconds(10));
        trainer.Send(coordinator, new StepReduced(id, start.Step, start.Generation, 42, MetricVector.From(Kto.Domain.Training.StepMetrics.Zero), 1.0));
        return (start.Step, start.Generation);
    }

    [Fact]
    public void ATrainerWhoseStateSourceIsLostFetchesFromAnotherAtOnce()
    {
        RunSpec spec = Spec(steps: 6);
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec, minTrainers: 2));
        var t1 = Trainer(coordinator, "t1");
        var t3 = Trainer(coordinator, "t3");
        Reduce(t1, coordinator, "t1");
        Reduce(t3, coordinator, "t3");
        t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        t3.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        var t2 = Trainer(coordinator, "t2"); // holds step 0 while step 1 runs
        Reduce(t1, coordinator, "t1");
        Reduce(t3, coordinator, "t3");
        t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        t3.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        var fetch = t2.ExpectMsg<FetchState>(TimeSpan.FromSeconds(10));
        Assert.Equal((2, t1.Ref.Path.ToStringWithAddress()), (fetch.Step, fetch.SourcePath));

        Sys.Stop(t1.Ref); // the source dies mid-transfer: t2 is sent to t3 at once, not after its stall time-out
        var again = t2.ExpectMsg<FetchState>(TimeSpan.FromSeconds(5));
        Assert.Equal((2, t3.Ref.Path.ToStringWithAddress()), (again.Step, again.SourcePath));
    }

    [Fact]
    public void ARepeatedRegistrationIsLoggedOnceAndAChangeAgain()
    {
        RunSpec spec = Spec(steps: 4);
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec, minTrainers: 2));
        var t1 = CreateTestProbe();
        void Register(int held)
        {
            t1.Send(coordinator, new RegisterTrainer("t1", "127.0.0.1:1", held));
            t1.ExpectMsg<TrainerRegistered>(TimeSpan.FromSeconds(10));
        }
        EventFilter.Info(contains: "trainer t1 registered").Expect(1, TimeSpan.FromSeconds(10), () =>
        {
            Register(0);
            Register(0); // a trainer repeats its registration until an answer arrives
            Register(0);
        });
        EventFilter.Info(contains: "trainer t1 registered at 127.0.0.1:1 holding step -1").Expect(1, TimeSpan.FromSeconds(10), () => Register(-1));
    }

    [Fact]
    public async Task WhenTheCheckpointWriterIsLostAfterTheLastCommitAnotherSyncedTrainerWritesTheFinalCheckpoint()
    {
        RunSpec spec = Spec(steps: 1);
        var finished = new TaskCompletionSource<RunState>();
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec, onFinished: s => finished.TrySetResult(s), minTrainers: 2));
        var t1 = CreateTestProbe();
        var t2 = CreateTestProbe();
        t1.Send(coordinator, new RegisterTrainer("t1", "127.0.0.1:1", 0));
        t1.ExpectMsg<TrainerRegistered>(TimeSpan.FromSeconds(10));
        t2.Send(coordinator, new RegisterTrainer("t2", "127.0.0.1:2", 0));
        t2.ExpectMsg<TrainerRegistered>(TimeSpan.FromSeconds(10));

        var (step, generation) = Reduce(t1, coordinator, "t1");
        Reduce(t2, coordinator, "t2");
        var apply1 = t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        var apply2 = t2.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        Assert.Equal((step, generation), (apply1.Step, apply1.Generation));
        Assert.Equal(_out, apply1.CheckpointDir); // the first member writes the final checkpoint…
        Assert.Null(apply2.CheckpointDir);

        Sys.Stop(t1.Ref); // …but is lost before it does
        var write = t2.ExpectMsg<WriteCheckpoint>(TimeSpan.FromSeconds(10));
        Assert.Equal((1, _out), (write.Step, write.Dir));
        Assert.False(finished.Task.IsCompleted); // the run is not complete without its final checkpoint
        t2.Send(coordinator, new CheckpointWritten("t2", 1, Path.Combine(_out, "checkpoint-1"), "abc"));
        RunState end = await finished.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(RunPhase.Completed, end.Phase);
        Assert.Equal(1, end.LatestCheckpoint!.Step);
        t2.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // asked once
    }

    [Fact]
    public async Task AFinalCheckpointWrittenAsPlannedIsNotAskedForAgain()
    {
        RunSpec spec = Spec(steps: 1);
        var finished = new TaskCompletionSource<RunState>();
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec, onFinished: s => finished.TrySetResult(s)));
        var t1 = Trainer(coordinator, "t1");
        Reduce(t1, coordinator, "t1");
        Assert.Equal(_out, t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10)).CheckpointDir);
        t1.ExpectNoMsg(TimeSpan.FromMilliseconds(1500)); // housekeeping runs every second: no second request while the first is pending
        t1.Send(coordinator, new CheckpointWritten("t1", 1, Path.Combine(_out, "checkpoint-1"), "abc"));
        await finished.Task.WaitAsync(TimeSpan.FromSeconds(10));
        t1.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task AnAttemptThatEndsAfterAPauseIsNotCommittedAndIsComputedAgainOnResume()
    {
        RunSpec spec = Spec(steps: 2);
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec));
        var t1 = Trainer(coordinator, "t1");
        var start = t1.ExpectMsg<StepStart>(TimeSpan.FromSeconds(10));
        Assert.IsType<RunStateReply>(await coordinator.Ask(new PauseRun(), TimeSpan.FromSeconds(10)));
        t1.Send(coordinator, new StepReduced("t1", start.Step, start.Generation, 42, MetricVector.From(Kto.Domain.Training.StepMetrics.Zero), 1.0));
        Assert.Equal((start.Step, start.Generation), (t1.ExpectMsg<StepAbort>(TimeSpan.FromSeconds(10)).Step, start.Generation));
        var paused = Assert.IsType<RunStateReply>(await coordinator.Ask(new GetRunState(), TimeSpan.FromSeconds(10))).State;
        Assert.Equal((RunPhase.Paused, 0), (paused.Phase, paused.CommittedSteps));
        t1.ExpectNoMsg(TimeSpan.FromMilliseconds(1500)); // no new attempt while paused

        Assert.IsType<RunStateReply>(await coordinator.Ask(new ResumeRun(), TimeSpan.FromSeconds(10)));
        var again = t1.ExpectMsg<StepStart>(TimeSpan.FromSeconds(10));
        Assert.Equal(0, again.Step);
        Assert.True(again.Generation > start.Generation);
        t1.Send(coordinator, new StepReduced("t1", again.Step, again.Generation, 42, MetricVector.From(Kto.Domain.Training.StepMetrics.Zero), 1.0));
        Assert.Equal(again.Generation, t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10)).Generation);
    }

    [Fact]
    public async Task APausePointStopsTheRunRightAfterThatCommitAndPointsOutsideTheRunAreRefused()
    {
        RunSpec spec = Spec(steps: 5);
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec));
        foreach (int outside in new[] { 0, 5, 6 })
            Assert.Contains($"run pause --at {outside}", Assert.IsType<CommandRejected>(await coordinator.Ask(new PauseRun(outside), TimeSpan.FromSeconds(10))).Reason);
        Assert.Equal(RunPhase.Running, Assert.IsType<RunStateReply>(await coordinator.Ask(new PauseRun(2), TimeSpan.FromSeconds(10))).State.Phase);
        Assert.Equal(2, Assert.IsType<ClusterStatus>(await coordinator.Ask(new GetClusterStatus(), TimeSpan.FromSeconds(10))).PauseAt);
        var t1 = Trainer(coordinator, "t1");
        for (int step = 0; step < 2; step++)
        {
            Assert.Equal(step, Reduce(t1, coordinator, "t1").Step);
            t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        }
        t1.ExpectNoMsg(TimeSpan.FromMilliseconds(1500)); // no third step: paused at 2
        var status = Assert.IsType<ClusterStatus>(await coordinator.Ask(new GetClusterStatus(), TimeSpan.FromSeconds(10)));
        Assert.Equal((RunPhase.Paused, 2, (int?)null), (status.State.Phase, status.State.CommittedSteps, status.PauseAt));
        Assert.Contains("--at 1", Assert.IsType<CommandRejected>(await coordinator.Ask(new PauseRun(1), TimeSpan.FromSeconds(10))).Reason);

        Assert.IsType<RunStateReply>(await coordinator.Ask(new ResumeRun(), TimeSpan.FromSeconds(10)));
        Assert.Equal(2, Reduce(t1, coordinator, "t1").Step);
    }

    [Fact]
    public async Task ResumeBeforeThePausePointCancelsItAndTheRunGoesPastIt()
    {
        RunSpec spec = Spec(steps: 5);
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec));
        Assert.Contains("not allowed", Assert.IsType<CommandRejected>(await coordinator.Ask(new ResumeRun(), TimeSpan.FromSeconds(10))).Reason); // running, no point
        Assert.IsType<RunStateReply>(await coordinator.Ask(new PauseRun(2), TimeSpan.FromSeconds(10)));
        var cancelled = Assert.IsType<PausePointCancelled>(await coordinator.Ask(new ResumeRun(), TimeSpan.FromSeconds(10)));
        Assert.Equal((2, RunPhase.Running), (cancelled.At, cancelled.State.Phase));
        Assert.Null(Assert.IsType<ClusterStatus>(await coordinator.Ask(new GetClusterStatus(), TimeSpan.FromSeconds(10))).PauseAt);
        var t1 = Trainer(coordinator, "t1");
        for (int step = 0; step < 3; step++)
        {
            Assert.Equal(step, Reduce(t1, coordinator, "t1").Step);
            t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        }
        var status = Assert.IsType<ClusterStatus>(await coordinator.Ask(new GetClusterStatus(), TimeSpan.FromSeconds(10)));
        Assert.Equal((RunPhase.Running, 3), (status.State.Phase, status.State.CommittedSteps));
    }

    [Fact]
    public async Task AStoppedRunSavesTheStateItStoppedAtBeforeItCountsAsFinished()
    {
        RunSpec spec = Spec(steps: 5);
        var finished = new TaskCompletionSource<RunState>();
        IActorRef coordinator = Sys.ActorOf(RunCoordinatorActor.Props(spec.RunId, startSpec: spec, onFinished: s => finished.TrySetResult(s)));
        var t1 = Trainer(coordinator, "t1");
        Reduce(t1, coordinator, "t1");
        t1.ExpectMsg<StepApply>(TimeSpan.FromSeconds(10));
        var second = t1.ExpectMsg<StepStart>(TimeSpan.FromSeconds(10));
        Assert.IsType<RunStateReply>(await coordinator.Ask(new StopRun(), TimeSpan.FromSeconds(10)));
        t1.Send(coordinator, new StepReduced("t1", second.Step, second.Generation, 42, MetricVector.From(Kto.Domain.Training.StepMetrics.Zero), 1.0));
        t1.ExpectMsg<StepAbort>(TimeSpan.FromSeconds(10));
        var write = t1.ExpectMsg<WriteCheckpoint>(TimeSpan.FromSeconds(10));
        Assert.Equal(1, write.Step);
        Assert.False(finished.Task.IsCompleted);
        t1.Send(coordinator, new CheckpointWritten("t1", 1, Path.Combine(_out, "checkpoint-1"), "abc"));
        RunState end = await finished.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((RunPhase.Stopped, 1, 1), (end.Phase, end.CommittedSteps, end.LatestCheckpoint!.Step));
    }

    void IDisposable.Dispose()
    {
        Shutdown();
        try
        {
            if (Directory.Exists(_out)) Directory.Delete(_out, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}
