using Kto.Cluster.Core.Downing;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The downing policy as a pure function: who may down whom, and after how long.</summary>
public sealed class DowningPolicyTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static readonly DowningMember Coordinator = new("akka.tcp://kto@127.0.0.1:9110", Coordinator: true, Reachable: true, AddressRank: 0);

    private static DowningMember Trainer(int i, bool reachable = true) => new($"akka.tcp://kto@127.0.0.1:{40000 + i}", false, reachable, i);

    private static DowningMember Host(int i, bool reachable = true) => new($"akka.tcp://kto@127.0.0.1:{9110 + i}", true, reachable, i);

    /// <summary>Runs <paramref name="views"/> one tick each, <paramref name="step"/> apart; returns every decision with its tick.</summary>
    private static List<(int Tick, DowningDecision Decision)> Run(IEnumerable<DowningView> views, TimeSpan step)
    {
        var state = DowningState.Empty;
        var all = new List<(int, DowningDecision)>();
        int tick = 0;
        foreach (DowningView v in views)
        {
            (state, IReadOnlyList<DowningDecision> d) = DowningPolicy.Decide(state, v, T0 + tick * step);
            all.AddRange(d.Select(x => (tick, x)));
            tick++;
        }
        return all;
    }

    private static readonly TimeSpan Half = TimeSpan.FromMilliseconds(500);

    [Fact]
    public void TheCoordinatorDownsATrainerOnlyAfterFiveSecondsUnreachable()
    {
        // ticks every 0.5 s: t1 unreachable from tick 2 on; 5 s later (tick 12) it is downed, not before
        var views = Enumerable.Range(0, 16).Select(t => new DowningView(Coordinator, true, [Trainer(1, reachable: t < 2), Trainer(2)]));
        var decisions = Run(views, Half);
        Assert.All(decisions, d => Assert.Equal(Trainer(1).Address, d.Decision.Address));
        Assert.Equal(12, decisions[0].Tick);
        Assert.Equal(DowningReason.Unreachable, decisions[0].Decision.Reason);
        Assert.Equal(TimeSpan.FromSeconds(5), decisions[0].Decision.For);
    }

    [Fact]
    public void AFlappingTrainerIsNotDownedWhileItKeepsComingBack()
    {
        // unreachable 4 s, reachable 0.5 s, again and again for a minute: never 5 s in a row
        var views = Enumerable.Range(0, 120).Select(t => new DowningView(Coordinator, true, [Trainer(1, reachable: t % 9 == 8)]));
        Assert.Empty(Run(views, Half));
    }

    [Fact]
    public void ASingleCoordinatorNeverDownsItselfWhateverTheTrainersDo()
    {
        // every trainer unreachable, for minutes: the trainers go, the coordinator stays
        var views = Enumerable.Range(0, 400).Select(_ => new DowningView(Coordinator, true, [.. Enumerable.Range(1, 6).Select(i => Trainer(i, reachable: false))]));
        var decisions = Run(views, Half);
        Assert.Equal(6, decisions.Select(d => d.Decision.Address).Distinct().Count());
        Assert.DoesNotContain(decisions, d => d.Decision.Address == Coordinator.Address);
    }

    [Fact]
    public void ATrainerNeverDownsOthersAndDownsItselfAfterFiveSecondsWithoutACoordinator()
    {
        DowningMember self = Trainer(1);
        var views = Enumerable.Range(0, 20).Select(t => new DowningView(self, true, [Coordinator with { Reachable = t < 4 }, Trainer(2, reachable: false), Trainer(3, reachable: false)]));
        var decisions = Run(views, Half);
        Assert.All(decisions, d => Assert.Equal(self.Address, d.Decision.Address));
        Assert.Equal(14, decisions[0].Tick); // coordinator unreachable from tick 4; 10 ticks = 5 s
        Assert.Equal(DowningReason.NoCoordinator, decisions[0].Decision.Reason);
    }

    [Fact]
    public void ATrainerWhoseCoordinatorLeftDownsItselfToJoinAgain()
    {
        // after a graceful coordinator restart the old coordinator is gone from the members altogether
        var views = Enumerable.Range(0, 14).Select(t => new DowningView(Trainer(1), true, t < 2 ? [Coordinator, Trainer(2)] : [Trainer(2)]));
        var decisions = Run(views, Half);
        Assert.Equal((12, Trainer(1).Address), (decisions[0].Tick, decisions[0].Decision.Address));
    }

    [Fact]
    public void ACoordinatorBackWithinFiveSecondsKeepsTheTrainers()
    {
        var views = Enumerable.Range(0, 40).Select(t => new DowningView(Trainer(1), true, [Coordinator with { Reachable = t is < 4 or > 12 }]));
        Assert.Empty(Run(views, Half));
    }

    [Fact]
    public void ANodeThatIsNotUpDecidesNothing()
    {
        var views = Enumerable.Range(0, 40).Select(_ => new DowningView(Trainer(1), false, [Coordinator with { Reachable = false }]));
        Assert.Empty(Run(views, Half));
        var coordinatorViews = Enumerable.Range(0, 40).Select(_ => new DowningView(Coordinator, false, [Trainer(1, reachable: false)]));
        Assert.Empty(Run(coordinatorViews, Half));
    }

    [Fact]
    public void TheMajorityOfThreeCoordinatorHostsDownsTheThirdAndTheThirdStepsAside()
    {
        DowningMember a = Host(0), b = Host(1), c = Host(2);
        var majority = Run(Enumerable.Range(0, 12).Select(_ => new DowningView(a, true, [b, c with { Reachable = false }, Trainer(1)])), Half);
        Assert.Equal([c.Address], majority.Select(d => d.Decision.Address).Distinct());
        var minority = Run(Enumerable.Range(0, 12).Select(_ => new DowningView(c, true, [a with { Reachable = false }, b with { Reachable = false }, Trainer(1)])), Half);
        Assert.Equal([c.Address], minority.Select(d => d.Decision.Address).Distinct());
        Assert.Equal(DowningReason.CoordinatorMinority, minority[0].Decision.Reason);
        Assert.Equal(10, minority[0].Tick);
    }

    [Fact]
    public void TwoCoordinatorHostsSplitOneToOneKeepTheLowestAddress()
    {
        DowningMember low = Host(0), high = Host(1);
        var fromLow = Run(Enumerable.Range(0, 12).Select(_ => new DowningView(low, true, [high with { Reachable = false }])), Half);
        var fromHigh = Run(Enumerable.Range(0, 12).Select(_ => new DowningView(high, true, [low with { Reachable = false }])), Half);
        Assert.Equal([high.Address], fromLow.Select(d => d.Decision.Address).Distinct());
        Assert.Equal([high.Address], fromHigh.Select(d => d.Decision.Address).Distinct());
    }

    /// <summary>
    /// Random interleavings of reachability (members flapping, dying, freezing, partitioned) seen from every node of
    /// a cluster with one coordinator host: no node ever names the coordinator host, trainers only ever name
    /// themselves, and every member named was unreachable in that node's view for the last 5 s without a break.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void RandomChurnNeverDownsTheOnlyCoordinatorAndNeverDownsEarly(int seed)
    {
        var random = new Random(seed);
        DowningMember[] trainers = [.. Enumerable.Range(1, 5).Select(i => Trainer(i))];
        DowningMember[] everyone = [Coordinator, .. trainers];
        var states = everyone.ToDictionary(m => m.Address, _ => DowningState.Empty);
        var history = everyone.ToDictionary(m => m.Address, _ => new List<HashSet<string>>());
        double flap = 0.1 + 0.4 * random.NextDouble();
        var unreachable = new HashSet<string>();
        for (int tick = 0; tick < 2000; tick++)
        {
            foreach (DowningMember m in everyone)
                if (random.NextDouble() < flap / 10) { if (!unreachable.Remove(m.Address)) unreachable.Add(m.Address); }
            foreach (DowningMember self in everyone)
            {
                // each node sees others through its own noise: a stale observation of the coordinator included
                var others = everyone.Where(o => o != self).Select(o => o with { Reachable = !unreachable.Contains(o.Address) && random.NextDouble() > 0.02 }).ToList();
                history[self.Address].Add([.. others.Where(o => !o.Reachable).Select(o => o.Address)]);
                (states[self.Address], var decisions) = DowningPolicy.Decide(states[self.Address], new DowningView(self, true, others), T0 + tick * Half);
                foreach (DowningDecision d in decisions)
                {
                    Assert.NotEqual(Coordinator.Address, d.Address);
                    if (!self.Coordinator) Assert.Equal(self.Address, d.Address);
                    else
                    {
                        var seen = history[self.Address];
                        int needed = (int)(DowningPolicy.DownAfter / Half);
                        Assert.True(seen.Count > needed && seen.TakeLast(needed + 1).All(s => s.Contains(d.Address)), $"tick {tick}: {d.Address} downed without {DowningPolicy.DownAfter} unreachable");
                    }
                }
            }
        }
    }
}
