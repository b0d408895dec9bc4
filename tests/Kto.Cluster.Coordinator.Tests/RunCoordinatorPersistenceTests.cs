using Akka.Actor;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The run coordinator on a real SQLite journal file: persist, stop the actor system, recover in a new one.</summary>
public sealed class RunCoordinatorPersistenceTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly RunSpec Spec = new("demo", "fp", ExampleCount: 10, Seed: 3, Shuffle: true, GlobalBatchSize: 4, Accumulation: 1, TotalSteps: 6, ConfigJson: "{}");
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-journal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ActorSystem NewSystem() => ActorSystem.Create("kto-test",
        PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(_dir, PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider));

    private static async Task<RunState> Ok(IActorRef coordinator, object command)
    {
        object reply = await coordinator.Ask(command, Timeout);
        return Assert.IsType<RunStateReply>(reply).State;
    }

    private static StepCommitted Commit(RunState s) => new(s.CommittedSteps, GenerationNumbers.First(s.Incarnation) + s.CommittedSteps, ["t1", "t2"], 99);

    [Fact]
    public async Task StateSurvivesAnActorSystemRestartAndIncarnationsGrow()
    {
        using (ActorSystem system = NewSystem())
        {
            IActorRef c = system.ActorOf(RunCoordinatorActor.Props(Spec.RunId), "run");
            RunState s = await Ok(c, new StartRun(Spec));
            Assert.Equal(1, s.Incarnation);
            for (int i = 0; i < 3; i++) s = await Ok(c, new CommitStep(Commit(s)));
            s = await Ok(c, new RecordCheckpoint(new CheckpointSaved(3, "/runs/demo/checkpoint-3", "h3")));
            Assert.Equal(3, s.CommittedSteps);
            await system.Terminate();
        }
        using (ActorSystem system = NewSystem())
        {
            IActorRef c = system.ActorOf(RunCoordinatorActor.Props(Spec.RunId), "run");
            RunState s = await Ok(c, new GetRunState());
            Assert.Equal(3, s.CommittedSteps);
            Assert.Equal(2, s.Incarnation);
            Assert.Equal(3, s.LatestCheckpoint!.Step);
            Assert.Equal(Spec, s.Spec);

            // A commit from the previous incarnation's generations is refused; the next step in this one is taken.
            object stale = await c.Ask(new CommitStep(new StepCommitted(3, GenerationNumbers.First(1) + 2, ["t1"], 1)), Timeout);
            Assert.IsType<CommandRejected>(stale);
            object twice = await c.Ask(new CommitStep(new StepCommitted(2, GenerationNumbers.First(2), ["t1"], 1)), Timeout);
            Assert.Contains("step 3 is the next", Assert.IsType<CommandRejected>(twice).Reason);
            s = await Ok(c, new CommitStep(Commit(s)));
            Assert.Equal(4, s.CommittedSteps);
            await system.Terminate();
        }
    }

    [Fact]
    public async Task TheRunCompletesAfterItsLastStepAndRecoversFromSnapshots()
    {
        using (ActorSystem system = NewSystem())
        {
            IActorRef c = system.ActorOf(RunCoordinatorActor.Props(Spec.RunId, snapshotInterval: 2), "run");
            RunState s = await Ok(c, new StartRun(Spec));
            while (s.CommittedSteps < Spec.TotalSteps) s = await Ok(c, new CommitStep(Commit(s)));
            Assert.Equal(RunPhase.Completed, s.Phase);
            Assert.IsType<CommandRejected>(await c.Ask(new PauseRun(), Timeout));
            await system.Terminate();
        }
        using (ActorSystem system = NewSystem())
        {
            IActorRef c = system.ActorOf(RunCoordinatorActor.Props(Spec.RunId, snapshotInterval: 2), "run");
            RunState s = await Ok(c, new GetRunState());
            Assert.Equal(RunPhase.Completed, s.Phase);
            Assert.Equal(Spec.TotalSteps, s.CommittedSteps);
            Assert.Equal(2, s.Incarnation);
            await system.Terminate();
        }
    }

    [Fact]
    public async Task AnotherSpecCannotTakeOverAStartedRun()
    {
        using ActorSystem system = NewSystem();
        IActorRef c = system.ActorOf(RunCoordinatorActor.Props(Spec.RunId), "run");
        await Ok(c, new StartRun(Spec));
        await Ok(c, new StartRun(Spec)); // same spec: idempotent
        object other = await c.Ask(new StartRun(Spec with { Seed = 4 }), Timeout);
        Assert.IsType<CommandRejected>(other);
        RunState paused = await Ok(c, new PauseRun());
        Assert.Equal(RunPhase.Paused, paused.Phase);
        Assert.IsType<CommandRejected>(await c.Ask(new CommitStep(Commit(paused)), Timeout));
        Assert.Equal(RunPhase.Running, (await Ok(c, new ResumeRun())).Phase);
        await system.Terminate();
    }
}
