using Kto.Cluster.Core.Remoting;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>The per-host budget of new inbound connections that fronts Akka.Remote (<see cref="InboundAdmissionTransport"/>).</summary>
public sealed class ConnectionBudgetTests
{
    private static TimeSpan At(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void AHostGetsItsBurstAtOnceThenTheRateAndOtherHostsAreNotTouched()
    {
        var budget = new ConnectionBudget(burst: 4, perSecond: 2);
        Assert.All(Enumerable.Range(0, 4), _ => Assert.True(budget.TryAdmit("10.0.0.9", At(0))));
        Assert.False(budget.TryAdmit("10.0.0.9", At(0)));
        Assert.False(budget.TryAdmit("10.0.0.9", At(0.25))); // half a token earned
        Assert.True(budget.TryAdmit("10.0.0.9", At(0.5)));  // one token at 2 a second
        Assert.False(budget.TryAdmit("10.0.0.9", At(0.6)));
        Assert.True(budget.TryAdmit("10.0.0.10", At(0.6))); // another host has its own budget
        // a long pause refills up to the burst, not beyond it
        Assert.Equal(4, Enumerable.Range(0, 10).Count(_ => budget.TryAdmit("10.0.0.9", At(100))));
    }

    [Fact]
    public void ALoopThatKeepsConnectingIsHeldToTheRate()
    {
        var budget = new ConnectionBudget(burst: 64, perSecond: 16);
        // 1,000 connections a second for 10 s (the bench's flood): the burst, then 16 a second
        int admitted = Enumerable.Range(0, 10_000).Count(i => budget.TryAdmit("127.0.0.1", At(i / 1000.0)));
        Assert.InRange(admitted, 222, 224); // 64 + 9.999 s × 16/s earned back = 223.98
    }

    [Fact]
    public void HostNamesCompareWithoutCase()
    {
        var budget = new ConnectionBudget(burst: 1, perSecond: 1);
        Assert.True(budget.TryAdmit("Box-A", At(0)));
        Assert.False(budget.TryAdmit("box-a", At(0)));
    }

    [Theory]
    [InlineData("[::ffff:127.0.0.1]", "127.0.0.1")] // an IPv4 peer of the dual-stack listener
    [InlineData("10.0.0.9", "10.0.0.9")]
    [InlineData("[::1]", "::1")]
    [InlineData("box-a", "box-a")]
    public void AnIpv4PeerCountsAsItsIpv4Address(string akkaHost, string budgetKey) =>
        Assert.Equal(budgetKey, InboundAdmissionTransport.HostOf(new Akka.Actor.Address("akka.tcp", "kto", akkaHost, 9110)));

    [Fact]
    public void TheTableOfHostsStaysBounded()
    {
        var budget = new ConnectionBudget(burst: 2, perSecond: 1, maxHosts: 3);
        foreach (string host in new[] { "a", "b", "c" }) Assert.True(budget.TryAdmit(host, At(0)));
        Assert.False(budget.TryAdmit("d", At(0)));   // full, and nobody's bucket has refilled yet
        Assert.Equal(3, budget.TrackedHosts);
        Assert.True(budget.TryAdmit("d", At(1)));    // a, b and c are full again: forgotten, d takes a place
        Assert.Equal(1, budget.TrackedHosts);
        Assert.True(budget.TryAdmit("a", At(1)));    // a forgotten host starts with a full bucket, as it would have had
    }

    [Fact]
    public void NonsenseSettingsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionBudget(1, double.NaN));
    }
}
