using Kto.Cluster.Exchange.Reduction;

namespace Kto.Cluster.Exchange.Tests;

public sealed class RingScheduleTests
{
    [Theory]
    [InlineData(2, 1200)]
    [InlineData(3, 1200)]
    [InlineData(4, 1200)]
    [InlineData(5, 1000)]
    public void EachMemberSendsAndReceivesTwiceNMinusOneOverNOfTheBuffer(int n, int length)
    {
        for (int rank = 0; rank < n; rank++)
        {
            var s = RingSchedule.Create(rank, n, length, elementsPerChunk: 64);
            long expected = 2L * (n - 1) * length / n;
            Assert.Equal(expected, s.Sends.Sum(t => (long)t.Count));
            Assert.Equal(expected, s.Receives.Sum(t => (long)t.Count));
            Assert.All(s.Sends.Concat(s.Receives), t => Assert.InRange(t.Count, 1, 64));
        }
    }

    [Fact]
    public void WhatIsSentAtAStepIsWhatWasReceivedAtTheStepBefore()
    {
        const int n = 4;
        for (int rank = 0; rank < n; rank++)
        {
            var s = RingSchedule.Create(rank, n, 1003, elementsPerChunk: 50);
            var sentLater = s.Sends.Where(t => t.Step > 0).Select(t => (t.Step - 1, t.Offset, t.Count));
            var receivedEarlier = s.Receives.Where(t => t.Step < s.LastStep).Select(t => (t.Step, t.Offset, t.Count));
            Assert.Equal(receivedEarlier, sentLater);
        }
    }
}
