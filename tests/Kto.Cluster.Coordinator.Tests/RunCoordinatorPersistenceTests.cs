using Akka.Actor;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>
/// The run coordinator on a real journal: persist, stop the actor system, recover in a new one. Run against a SQLite
/// file (<see cref="SqliteRunCoordinatorTests"/>) and a PostgreSQL server (<see cref="PostgresRunCoordinatorTests"/>).
/// </summary>
public abstract class RunCoordinatorPersistenceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>A fresh run id per test, so tests sharing one database never share a journal.</summary>
    private readonly RunSpec Spec = new("run-" + Guid.NewGuid().ToString("N")[..12], "fp", ExampleCount: 10, Seed: 3, Shuffle: true, GlobalBatchSize: 4, Accumulation: 1, TotalSteps: 6, ConfigJson: "{}");

    /// <summary>A new actor system on the backend's journal.</summary>
    protected abstract ActorSystem NewSystem();

    private static async Task<RunState> Ok(IActorRef coordinator, object command)
    {
        object reply = await coordinator.Ask(command, Timeout);
        return Assert.IsType<RunStateReply>(reply).State;
    }

    private static StepCommitted Commit(RunState s) => new(s.CommittedSteps, GenerationNumbers.First(s.Incarnation) + s.CommittedSteps, ["t1", "t2"], 99);

    protected async Task StateSurvivesAnActorSystemRestartAndIncarnationsGrow()
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

    protected async Task TheRunCompletesAfterItsLastStepAndRecoversFromSnapshots()
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

    protected async Task AnotherSpecCannotTakeOverAStartedRun()
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

/// <summary>The coordinator's journal on a SQLite file in a temporary run directory (the default backend).</summary>
public sealed class SqliteRunCoordinatorTests : RunCoordinatorPersistenceTests, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-journal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    protected override ActorSystem NewSystem() => ActorSystem.Create("kto-test",
        PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(_dir, PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider));

    [Fact] public Task RestartRecovers() => StateSurvivesAnActorSystemRestartAndIncarnationsGrow();
    [Fact] public Task CompletesAndRecoversFromSnapshots() => TheRunCompletesAfterItsLastStepAndRecoversFromSnapshots();
    [Fact] public Task SpecIsFixed() => AnotherSpecCannotTakeOverAStartedRun();
}

/// <summary>
/// The coordinator's journal on a real PostgreSQL server given by <c>KTO_TEST_POSTGRES</c> (a Npgsql connection
/// string). <c>.ci/run</c> installs and starts PostgreSQL and sets it; without it these tests report as skipped.
/// </summary>
public sealed class PostgresRunCoordinatorTests : RunCoordinatorPersistenceTests
{
    protected override ActorSystem NewSystem() => ActorSystem.Create("kto-test",
        PersistenceConfig.Hocon(PostgresFactAttribute.ConnectionString!, PersistenceConfig.PostgresProvider));

    [PostgresFact] public Task RestartRecovers() => StateSurvivesAnActorSystemRestartAndIncarnationsGrow();
    [PostgresFact] public Task CompletesAndRecoversFromSnapshots() => TheRunCompletesAfterItsLastStepAndRecoversFromSnapshots();
    [PostgresFact] public Task SpecIsFixed() => AnotherSpecCannotTakeOverAStartedRun();
}

/// <summary>The exactly-once audit, read from the journal a coordinator wrote (SQLite file), across a restart.</summary>
public sealed class JournalAuditTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-audit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ActorSystem NewSystem() => ActorSystem.Create("kto-audit",
        PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(_dir, PersistenceConfig.DefaultSqliteFile)), PersistenceConfig.SqliteProvider));

    [Fact]
    public async Task EveryStepOfEveryEpochIsCommittedExactlyOnce()
    {
        // 10 examples, batches of 4: 3 steps per epoch, 6 steps = 2 full epochs; a coordinator restart half way.
        var spec = new RunSpec("audit", "fp", 10, 3, true, 4, 1, 6, "{}");
        async Task CommitUntil(ActorSystem system, int until)
        {
            IActorRef c = system.ActorOf(RunCoordinatorActor.Props(spec.RunId), "run");
            var s = Assert.IsType<RunStateReply>(await c.Ask(new StartRun(spec), Timeout)).State;
            while (s.CommittedSteps < until)
                s = Assert.IsType<RunStateReply>(await c.Ask(new CommitStep(new StepCommitted(s.CommittedSteps, GenerationNumbers.First(s.Incarnation) + s.CommittedSteps, ["t"], 1)), Timeout)).State;
        }
        using (ActorSystem system = NewSystem())
        {
            await CommitUntil(system, 4);
            await system.Terminate();
        }
        using (ActorSystem system = NewSystem())
        {
            await CommitUntil(system, 6);
            IReadOnlyList<IRunEvent> events = await JournalReader.ReadAsync(system, spec.RunId);
            Assert.Equal(6, events.OfType<StepCommitted>().Count());
            Assert.Equal(2, events.OfType<CoordinatorIncarnated>().Count());
            AuditReport audit = JournalAudit.Check(events, requireComplete: true);
            Assert.True(audit.Ok, string.Join("; ", audit.Problems));
            Assert.Equal(6, audit.Committed);
            await system.Terminate();
        }
    }
}
