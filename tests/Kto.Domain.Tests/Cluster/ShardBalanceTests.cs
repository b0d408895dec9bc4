using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

/// <summary>The coordinator's shares for members of unequal speed (<see cref="ShardBalance"/>), from hand-made reports.</summary>
public sealed class ShardBalanceTests
{
    /// <summary>A report whose compute (seconds less exchange, plus ahead) is <paramref name="busy"/>.</summary>
    private static StepReduced Report(string id, double busy, double ahead = 0) =>
        new(id, 0, 1, 42, [], 1.0, Seconds: busy - ahead + 0.02, ExchangeSeconds: 0.02, AheadSeconds: ahead);

    /// <summary>Commits of members whose seconds per example are <paramref name="perExample"/>, each computing its current share of 16.</summary>
    private static (ShardBalance Balance, List<string> Changes) Steps(ShardBalance balance, string[] members, double[] perExample, int steps, int units = 16)
    {
        var changes = new List<string>();
        for (int s = 0; s < steps; s++)
        {
            int[]? shares = balance.SharesFor(members);
            int[] counts = ShardPlan.Apportion(units, shares ?? [.. members.Select(_ => 1)]);
            var reports = members.Select((m, i) => Report(m, 0.01 + perExample[i] * counts[i], ahead: perExample[i] * counts[i] / 3)).ToList();
            (balance, string? change) = balance.Observe(members, shares, reports, units);
            if (change is not null) changes.Add(change);
        }
        return (balance, changes);
    }

    [Fact]
    public void AMemberThatTakesHalfAsLongAgainPerExampleGetsFewerExamplesOnceMeasured()
    {
        string[] members = ["t1", "t2"];
        var (early, none) = Steps(ShardBalance.Empty, members, [0.02, 0.03], ShardBalance.MinSamples - 1);
        Assert.Null(early.SharesFor(members)); // not measured enough yet
        Assert.Empty(none);

        var (balance, changes) = Steps(ShardBalance.Empty, members, [0.02, 0.03], ShardBalance.Hold + 12);
        int[] shares = Assert.IsType<int[]>(balance.SharesFor(members));
        Assert.Equal([10, 6], ShardPlan.Apportion(16, shares)); // 16 in inverse proportion to 2 : 3 is 9.6 : 6.4
        Assert.Single(changes); // moved once, then held
        Assert.Contains("t1 10, t2 6 of 16", changes[0]);
        Assert.Null(balance.SharesFor(["t2", "t1"])); // another membership (order) has its own shares
    }

    [Fact]
    public void AStepWhoseSplitOrMembershipIsNewIsNotMeasuredAndASplitHoldsItsSteps()
    {
        string[] members = ["t1", "t2"];
        var (balance, changes) = Steps(ShardBalance.Empty, members, [0.02, 0.03], ShardBalance.Hold);
        Assert.Empty(changes); // measured Hold − 1 steps: not yet
        Assert.Equal(ShardBalance.Hold - 1, balance.Speed["t1"].Samples);
        // A step of another membership resets the count (and is not measured for the new one).
        (balance, _) = balance.Observe(["t1", "t2", "t3"], null, [Report("t1", 0.1), Report("t2", 0.1), Report("t3", 0.1)], 16);
        Assert.Equal(ShardBalance.Hold - 1, balance.Speed["t1"].Samples);
        Assert.False(balance.Speed.ContainsKey("t3"));
        var (again, none) = Steps(balance, members, [0.02, 0.03], ShardBalance.Hold);
        Assert.Empty(none);
        Assert.Single(Steps(again, members, [0.02, 0.03], 1).Changes);
    }

    [Fact]
    public void EqualOrNearlyEqualMembersKeepEqualShares()
    {
        string[] members = ["t1", "t2", "t3"];
        var (balance, changes) = Steps(ShardBalance.Empty, members, [0.020, 0.0204, 0.0198], 20);
        Assert.Null(balance.SharesFor(members));
        Assert.Empty(changes);
    }

    [Fact]
    public void UnderFullDeterminismSlicesAreApportionedAndEveryMemberKeepsOne()
    {
        string[] members = ["t1", "t2"];
        // 4 slices; t2 takes 4× as long per slice: 3 + 1 (it keeps one, so it is still measured).
        var (balance, _) = Steps(ShardBalance.Empty, members, [0.05, 0.20], 20, units: 4);
        Assert.Equal([3, 1], ShardPlan.Apportion(4, balance.SharesFor(members)!));
        // More members than units: nothing to balance.
        var (tiny, changes) = Steps(ShardBalance.Empty, ["a", "b", "c"], [0.01, 0.05, 0.05], 10, units: 2);
        Assert.Null(tiny.SharesFor(["a", "b", "c"]));
        Assert.Empty(changes);
    }

    [Fact]
    public void WhenTheSlowMemberSpeedsUpTheSharesComeBack()
    {
        string[] members = ["t1", "t2"];
        var (slow, _) = Steps(ShardBalance.Empty, members, [0.02, 0.03], 20);
        Assert.NotNull(slow.SharesFor(members));
        var (back, changes) = Steps(slow, members, [0.02, 0.02], 60);
        Assert.Null(back.SharesFor(members)); // equal again
        Assert.NotEmpty(changes);
    }
}
