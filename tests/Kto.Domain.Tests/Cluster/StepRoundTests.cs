using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public class StepRoundTests
{
    [Fact]
    public void CommitsWhenEveryMemberReportsTheSameChecksum()
    {
        var r = StepRound.Start(5, 100, ["a", "b", "c"]);
        (r, var o) = r.Report("b", 5, 100, 7);
        Assert.Equal(RoundOutcome.Pending, o);
        (r, o) = r.Report("a", 5, 100, 7);
        Assert.Equal(RoundOutcome.Pending, o);
        (r, o) = r.Report("c", 5, 100, 7);
        Assert.Equal(RoundOutcome.Commit, o);
        StepCommitted commit = r.ToCommit();
        Assert.Equal((5, 100L, 7UL), (commit.Step, commit.Generation, commit.Checksum));
        Assert.Equal(new[] { "a", "b", "c" }, commit.Members.ToArray());
    }

    [Fact]
    public void StaleAndForeignReportsAreIgnored()
    {
        var r = StepRound.Start(5, 100, ["a", "b"]);
        Assert.Equal(RoundOutcome.Stale, r.Report("a", 4, 100, 7).Outcome);
        Assert.Equal(RoundOutcome.Stale, r.Report("a", 5, 99, 7).Outcome);
        Assert.Equal(RoundOutcome.Stale, r.Report("z", 5, 100, 7).Outcome);
        (r, _) = r.Report("a", 5, 100, 7);
        Assert.Equal(RoundOutcome.Stale, r.Report("a", 5, 100, 8).Outcome);   // a second report from the same member
        Assert.Throws<InvalidOperationException>(() => r.ToCommit());
    }

    [Fact]
    public void DisagreementIsAMismatch()
    {
        var r = StepRound.Start(0, 1, ["a", "b"]);
        (r, _) = r.Report("a", 0, 1, 7);
        Assert.Equal(RoundOutcome.Mismatch, r.Report("b", 0, 1, 8).Outcome);
    }

    [Fact]
    public void RetryWithSurvivorsIsANewGeneration()
    {
        var r = StepRound.Start(3, 10, ["a", "b", "c"]);
        Assert.True(r.Needs("b"));
        Assert.False(r.Needs("x"));
        var retry = r.Retry(r.Members.Where(m => m != "b"));
        Assert.Equal(3, retry.Step);
        Assert.Equal(11, retry.Generation);
        Assert.Equal(new[] { "a", "c" }, retry.Members.ToArray());
        Assert.Empty(retry.Reports);
        Assert.Throws<ArgumentException>(() => StepRound.Start(0, 1, []));
        Assert.Throws<ArgumentException>(() => StepRound.Start(0, 1, ["a", "a"]));
    }
}
