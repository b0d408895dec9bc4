using Akka.Actor;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The scorer pool's scheduler against test probes standing in for scorers, on a real SQLite journal.</summary>
public sealed class ScoringSchedulerTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly string Dir = Directory.CreateTempSubdirectory("kto-scoring-").FullName;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    public ScoringSchedulerTests()
        : base(PersistenceConfig.Hocon(PersistenceConfig.SqliteConnectionString(Path.Combine(Dir, Guid.NewGuid().ToString("N")[..8] + ".db")), PersistenceConfig.SqliteProvider))
    {
    }

    /// <summary>8 examples in dataset order, micro-batches of 4: units [0..3] and [4..7]; a fresh fingerprint per test.</summary>
    private static RunSpec Spec() => new("run", "fp" + Guid.NewGuid().ToString("N"), ExampleCount: 8, Seed: 1, Shuffle: false, GlobalBatchSize: 4, Accumulation: 1,
        TotalSteps: 2, ConfigJson: "{}", ReferenceHash: "ref");

    private static UnitScored Answer(ScoreUnit u, string scorer = "s1") =>
        new(scorer, u.Unit, u.Indices, [.. u.Indices.Select(i => -1.0 - i)], [.. u.Indices.Select(i => -0.5 - i)]);

    [Fact]
    public async Task AUnitAScorerNeverAnswersIsHandedOutAgainAndStoredUnitsSurviveARestart()
    {
        RunSpec spec = Spec();
        IActorRef scheduler = Sys.ActorOf(ReferenceScoresActor.Props(spec, window: 10, unitTimeout: TimeSpan.FromMilliseconds(800)));
        var s1 = CreateTestProbe();
        s1.Send(scheduler, new RegisterScorer("s1", spec.RunId));
        Assert.Equal(spec, s1.ExpectMsg<ScorerRegistered>(Wait).Spec);
        var first = s1.ExpectMsg<ScoreUnit>(Wait);
        var second = s1.ExpectMsg<ScoreUnit>(Wait);
        Assert.Equal(0, first.Unit);
        Assert.Equal([0, 1, 2, 3], first.Indices);
        Assert.Equal(1, second.Unit);
        Assert.Equal([4, 5, 6, 7], second.Indices);

        s1.Send(scheduler, Answer(first));
        // Unit 1 is never answered: after the timeout it is handed out again.
        var again = s1.ExpectMsg<ScoreUnit>(Wait);
        Assert.Equal(1, again.Unit);
        s1.Send(scheduler, Answer(again));
        s1.Send(scheduler, Answer(second)); // the late first answer: already stored, ignored
        AwaitAssert(() => Assert.Equal(2, scheduler.Ask<ScoringStatus>(new GetScoringStatus(), Wait).Result.StoredUnits), Wait);

        // A new scheduler over the same journal (a coordinator restart) holds both units and hands out nothing.
        await scheduler.GracefulStop(Wait);
        IActorRef restarted = Sys.ActorOf(ReferenceScoresActor.Props(spec, window: 10));
        var status = await restarted.Ask<ScoringStatus>(new GetScoringStatus(), Wait);
        Assert.Equal((2, 2), (status.NeededUnits, status.StoredUnits));
        var s2 = CreateTestProbe();
        s2.Send(restarted, new RegisterScorer("s2", spec.RunId));
        s2.ExpectMsg<ScorerRegistered>(Wait);
        s2.ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        // Each unit was stored exactly once.
        using ActorSystem reader = ActorSystem.Create("reader", Sys.Settings.Config);
        IReadOnlyList<ScoresStored> stored = await JournalReader.ReadScoresAsync(reader, spec.DatasetFingerprint, spec.ReferenceHash!);
        Assert.Equal([0, 1], stored.Select(s => s.Unit));
        Assert.Equal([-5.0, -6.0, -7.0, -8.0], stored[1].Completion);
    }

    [Fact]
    public void TheWindowKeepsScoringNearTheTrainingFrontier()
    {
        RunSpec spec = Spec();
        IActorRef scheduler = Sys.ActorOf(ReferenceScoresActor.Props(spec, window: 1));
        var s1 = CreateTestProbe();
        s1.Send(scheduler, new RegisterScorer("s1", spec.RunId));
        s1.ExpectMsg<ScorerRegistered>(Wait);
        Assert.Equal(0, s1.ExpectMsg<ScoreUnit>(Wait).Unit);
        s1.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // unit 1 is for step 2, beyond a window of 1 step
        scheduler.Tell(new ScoringFrontier(1));
        Assert.Equal(1, s1.ExpectMsg<ScoreUnit>(Wait).Unit);
    }
}
