using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public sealed class TrainerCutsTests
{
    private static readonly TimeSpan DownAfter = TimeSpan.FromSeconds(5);
    private static readonly DateTime T0 = new(2026, 12, 7, 12, 0, 0, DateTimeKind.Utc);
    private const string A1 = "akka.tcp://kto@127.0.0.1:4001", A2 = "akka.tcp://kto@127.0.0.1:4002", A2Again = "akka.tcp://kto@127.0.0.1:4102";

    private static TrainerReachability T(string id, string address, int held = 10, bool unreachable = false) => new(id, address, held, unreachable);

    [Fact]
    public void ATrainerCutFromAKeptOneIsLeftOutAtOnceAndDownedAfterTheDownAfterTime()
    {
        var cuts = new TrainerCuts();
        Assert.True(cuts.Report("t2", A2, [A1]));
        TrainerReachability[] both = [T("t1", A1), T("t2", A2)];
        CutVerdict first = cuts.Evaluate(both, T0, DownAfter);
        Assert.Equal(["t2"], first.Excluded.Keys);
        Assert.Equal("cut off from trainer(s) t1, which are kept", first.Excluded["t2"]);
        Assert.Empty(first.Downing);
        Assert.Empty(cuts.Evaluate(both, T0 + TimeSpan.FromSeconds(4.9), DownAfter).Downing);
        CutVerdict late = cuts.Evaluate(both, T0 + TimeSpan.FromSeconds(5), DownAfter);
        Assert.Equal([new CutOffDowning("t2", A2, TimeSpan.FromSeconds(5))], late.Downing);
        // Downed once; a cut that lasts starts a new clock.
        Assert.Empty(cuts.Evaluate(both, T0 + TimeSpan.FromSeconds(6), DownAfter).Downing);
    }

    [Fact]
    public void AReportFromAnEarlierIncarnationSaysNothingAboutTheOneThatJoinedAgain()
    {
        var cuts = new TrainerCuts();
        cuts.Report("t2", A2, [A1]);
        // The old t2 is still registered and the coordinator does not see it as unreachable (it was removed from the
        // cluster): its last report leaves it out and starts its clock.
        Assert.Equal(["t2"], cuts.Evaluate([T("t1", A1), T("t2", A2)], T0, DownAfter).Excluded.Keys);
        // t2 is back at a new address, past the old clock's down-after time, and has not reported yet.
        CutVerdict back = cuts.Evaluate([T("t1", A1), T("t2", A2Again)], T0 + TimeSpan.FromSeconds(8), DownAfter);
        Assert.Empty(back.Excluded);
        Assert.Empty(back.Downing);
        // A report that still arrives from the old process (same id, old address) is not held against the new one.
        cuts.Report("t2", A2, [A1]);
        Assert.Empty(cuts.Evaluate([T("t1", A1), T("t2", A2Again)], T0 + TimeSpan.FromSeconds(9), DownAfter).Excluded);
    }

    [Fact]
    public void ANewIncarnationCutOffAgainStartsAFreshClock()
    {
        var cuts = new TrainerCuts();
        cuts.Report("t2", A2, [A1]);
        cuts.Evaluate([T("t1", A1), T("t2", A2)], T0, DownAfter);
        cuts.Report("t2", A2Again, [A1]);
        TrainerReachability[] again = [T("t1", A1), T("t2", A2Again)];
        CutVerdict v = cuts.Evaluate(again, T0 + TimeSpan.FromSeconds(6), DownAfter);
        Assert.Equal(["t2"], v.Excluded.Keys);
        Assert.Empty(v.Downing);
        Assert.Equal([new CutOffDowning("t2", A2Again, TimeSpan.FromSeconds(5))], cuts.Evaluate(again, T0 + TimeSpan.FromSeconds(11), DownAfter).Downing);
    }

    [Fact]
    public void TheCoordinatorsOwnVerdictComesFirstAndAnUnreachableTrainersReportsAreIgnored()
    {
        var cuts = new TrainerCuts();
        cuts.Report("t1", A1, [A2]);
        cuts.Report("t2", A2, [A1]);
        CutVerdict v = cuts.Evaluate([T("t1", A1), T("t2", A2, unreachable: true)], T0, DownAfter);
        Assert.Equal(new Dictionary<string, string> { ["t2"] = "unreachable" }, v.Excluded);
        Assert.Empty(cuts.Evaluate([T("t1", A1), T("t2", A2, unreachable: true)], T0 + TimeSpan.FromSeconds(30), DownAfter).Downing);
    }

    [Fact]
    public void TheTrainerHoldingTheNewerStepIsKeptAndAnEmptyReportHealsTheCut()
    {
        var cuts = new TrainerCuts();
        cuts.Report("t1", A1, [A2]);
        TrainerReachability[] trainers = [T("t1", A1, held: 9), T("t2", A2, held: 10)];
        Assert.Equal(["t1"], cuts.Evaluate(trainers, T0, DownAfter).Excluded.Keys);
        Assert.True(cuts.Report("t1", A1, []));
        Assert.False(cuts.Report("t1", A1, []));
        Assert.Empty(cuts.Evaluate(trainers, T0 + TimeSpan.FromSeconds(10), DownAfter).Excluded);
        Assert.Empty(cuts.Evaluate(trainers, T0 + TimeSpan.FromSeconds(10), DownAfter).Downing);
    }

    [Fact]
    public void ATrainerThatLeftTakesItsReportsAndClockWithIt()
    {
        var cuts = new TrainerCuts();
        cuts.Report("t2", A2, [A1]);
        cuts.Evaluate([T("t1", A1), T("t2", A2)], T0, DownAfter);
        Assert.Empty(cuts.Evaluate([T("t1", A1)], T0 + TimeSpan.FromSeconds(1), DownAfter).Excluded);
        // Registered again at the same address (a restart on the same port) with no report yet: nothing against it.
        CutVerdict back = cuts.Evaluate([T("t1", A1), T("t2", A2)], T0 + TimeSpan.FromSeconds(10), DownAfter);
        Assert.Empty(back.Excluded);
        Assert.Empty(back.Downing);
    }
}
