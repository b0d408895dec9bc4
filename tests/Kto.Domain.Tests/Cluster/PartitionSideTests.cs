using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

public sealed class PartitionSideTests
{
    [Fact]
    public void ATwoTwoSplitKeepsTheSideOfTheFirstMember()
    {
        (string, string)[] cuts = [("t1", "t3"), ("t1", "t4"), ("t2", "t3"), ("t2", "t4")];
        Assert.Equal(["t3", "t4"], PartitionSide.LeftOut(["t1", "t2", "t3", "t4"], cuts));
        Assert.Equal(["t1", "t2"], PartitionSide.LeftOut(["t3", "t1", "t2", "t4"], cuts));
    }

    [Fact]
    public void OneTrainerCutFromTheOthersIsLeftOutUnlessItComesFirst()
    {
        (string, string)[] cuts = [("t2", "t1"), ("t3", "t2")];
        Assert.Equal(["t2"], PartitionSide.LeftOut(["t1", "t2", "t3"], cuts));
        Assert.Equal(["t1", "t3"], PartitionSide.LeftOut(["t2", "t1", "t3"], cuts));
        Assert.Empty(PartitionSide.LeftOut(["t1", "t2", "t3"], []));
    }

    /// <summary>Random trainers and cuts: the kept set has no cut inside, each left-out trainer is cut from a kept one before it, and the order of the cut list does not matter.</summary>
    [Property(MaxTest = 500)]
    public Property KeptTrainersAreCutFreeAndEveryLeftOutOneIsCutFromAnEarlierKeptOne(PositiveInt n, int[] raw)
    {
        int count = 1 + n.Get % 9;
        var ids = Enumerable.Range(0, count).Select(i => $"t{i}").ToList();
        var cuts = (raw ?? []).Select(x => (ids[Math.Abs(x % count)], ids[Math.Abs((x / 16) % count)])).ToList();
        var leftOut = PartitionSide.LeftOut(ids, cuts);
        var kept = ids.Except(leftOut).ToList();
        bool Cut(string a, string b) => cuts.Any(c => a != b && ((c.Item1 == a && c.Item2 == b) || (c.Item1 == b && c.Item2 == a)));
        bool cutFree = kept.All(a => kept.All(b => !Cut(a, b)));
        bool justified = leftOut.All(l => kept.Any(k => ids.IndexOf(k) < ids.IndexOf(l) && Cut(k, l)));
        var reversed = PartitionSide.LeftOut(ids, Enumerable.Reverse(cuts).Select(c => (c.Item2, c.Item1)));
        return (cutFree && justified && reversed.SequenceEqual(leftOut) && kept.Count > 0).ToProperty();
    }
}
