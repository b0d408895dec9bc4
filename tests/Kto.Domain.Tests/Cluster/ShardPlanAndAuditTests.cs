using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public class ShardPlanAndAuditTests
{
    [Fact]
    public void ShardsPartitionTheBatchForEveryMemberCount()
    {
        for (int n = 0; n <= 17; n++)
        {
            int[] batch = Enumerable.Range(100, n).ToArray();
            for (int members = 1; members <= 6; members++)
            {
                var shards = Enumerable.Range(0, members).Select(r => ShardPlan.Shard(batch, members, r)).ToList();
                Assert.Equal(batch, shards.SelectMany(s => s));                           // in order, nothing lost or doubled
                Assert.True(shards.Max(s => s.Length) - shards.Min(s => s.Length) <= 1);  // balanced
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardPlan.Shard([1, 2], 2, 2));
    }

    [Fact]
    public void SharesApportionTheBatchByLargestRemaindersAndEqualSharesGiveTheEqualSplit()
    {
        Assert.Equal([9, 7], ShardPlan.Apportion(16, [9, 7]));
        Assert.Equal([3, 7], ShardPlan.Apportion(10, [1, 2])); // 3.33 and 6.67: the larger remainder gets the last one
        Assert.Equal([2, 1, 1], ShardPlan.Apportion(4, [5, 5, 5])); // ties go to the lower rank
        Assert.Equal([0, 3], ShardPlan.Apportion(3, [1, 1000]));
        for (int n = 0; n <= 17; n++)
        {
            int[] batch = Enumerable.Range(100, n).ToArray();
            for (int members = 1; members <= 6; members++)
            {
                int[] equal = [.. Enumerable.Repeat(3, members)];
                int[] uneven = [.. Enumerable.Range(1, members)];
                for (int r = 0; r < members; r++) Assert.Equal(ShardPlan.Shard(batch, members, r), ShardPlan.Shard(batch, equal, members, r));
                var shards = Enumerable.Range(0, members).Select(r => ShardPlan.Shard(batch, uneven, members, r)).ToList();
                Assert.Equal(batch, shards.SelectMany(x => x)); // in order, nothing lost or doubled
                Assert.Equal(ShardPlan.Apportion(n, uneven), shards.Select(x => x.Length));
            }
        }
        Assert.Throws<ArgumentException>(() => ShardPlan.Apportion(4, [1, 0]));
        Assert.Throws<ArgumentException>(() => ShardPlan.Shard([1, 2], [1, 1, 1], 2, 0));
    }

    private static List<IRunEvent> Journal(int steps)
    {
        var events = new List<IRunEvent> { new RunStarted(RunStateTests.Spec), new CoordinatorIncarnated(1) };
        for (int s = 0; s < steps; s++) events.Add(new StepCommitted(s, GenerationNumbers.First(1) + s, ["a"], 1));
        return events;
    }

    [Fact]
    public void ACompleteJournalPassesTheAudit()
    {
        var report = JournalAudit.Check(Journal(RunStateTests.Spec.TotalSteps), requireComplete: true);
        Assert.True(report.Ok, string.Join("; ", report.Problems));
        Assert.Equal(6, report.Committed);
    }

    [Fact]
    public void DuplicatesGapsAndShortRunsAreReported()
    {
        var dup = Journal(3);
        dup.Add(new StepCommitted(1, GenerationNumbers.First(1) + 9, ["a"], 1));
        Assert.Contains(JournalAudit.Check(dup, false).Problems, p => p.Contains("step 1 committed 2 times", StringComparison.Ordinal));

        var gap = Journal(2);
        gap.Add(new StepCommitted(3, GenerationNumbers.First(1) + 9, ["a"], 1));
        Assert.Contains(JournalAudit.Check(gap, false).Problems, p => p.Contains("step 2 missing", StringComparison.Ordinal));

        Assert.Contains(JournalAudit.Check(Journal(4), true).Problems, p => p.Contains("4 of 6", StringComparison.Ordinal));
        Assert.False(JournalAudit.Check([], false).Ok);
    }

    [Fact]
    public void ThePlanIsIndependentOfTheNumberOfTrainers()
    {
        // The global batches come from the spec alone; sharding only decides who computes which part.
        var plan = RunStateTests.Spec.Plan();
        for (int step = 0; step < RunStateTests.Spec.TotalSteps; step++)
            foreach (int[] micro in plan.Step(step))
                for (int members = 1; members <= 4; members++)
                    Assert.Equal(micro, Enumerable.Range(0, members).SelectMany(r => ShardPlan.Shard(micro, members, r)));
    }
}
