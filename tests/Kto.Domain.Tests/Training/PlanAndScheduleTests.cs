using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Training;

public class PlanAndScheduleTests
{
    [Fact]
    public void EveryEpochVisitsEveryExampleOnce()
    {
        var plan = new BatchPlan(count: 23, seed: 4, shuffle: true, batchSize: 4, accumulation: 2);
        Assert.Equal(6, plan.MicroBatchesPerEpoch);
        Assert.Equal(3, plan.StepsPerEpoch);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var seen = Enumerable.Range(epoch * 3, 3).SelectMany(s => plan.Step(s)).SelectMany(mb => mb).ToList();
            Assert.Equal(Enumerable.Range(0, 23), seen.Order());
        }
        Assert.NotEqual(plan.EpochOrder(0), plan.EpochOrder(1));
        Assert.Equal(plan.EpochOrder(1), new BatchPlan(23, 4, true, 4, 2).EpochOrder(1)); // pure function of its inputs
    }

    [Fact]
    public void WithoutShufflingTheDatasetOrderIsKept()
    {
        var plan = new BatchPlan(10, 1, shuffle: false, batchSize: 4, accumulation: 1);
        Assert.Equal([[0, 1, 2, 3]], plan.Step(0));
        Assert.Equal([[8, 9]], plan.Step(2));
        Assert.Equal([[0, 1, 2, 3]], plan.Step(3)); // next epoch
    }

    [Fact]
    public void TotalStepsFollowEpochsOrMaxSteps()
    {
        var plan = new BatchPlan(10, 1, false, 4, 1);
        Assert.Equal(9, plan.TotalSteps(3, -1));
        Assert.Equal(5, plan.TotalSteps(1.5, -1));
        Assert.Equal(7, plan.TotalSteps(3, 7));
    }

    [Fact]
    public void LinearWarmupThenDecayAsHuggingFace()
    {
        var s = new LrSchedule(1.0, "linear", WarmupSteps: 2, TotalSteps: 10);
        Assert.Equal([0.0, 0.5, 1.0, 0.875, 0.75], Enumerable.Range(0, 5).Select(s.At));
        Assert.Equal(0.125, s.At(9), 12);
        var cos = new LrSchedule(1.0, "cosine", 0, 4);
        Assert.Equal(1.0, cos.At(0), 12);
        Assert.Equal(0.5, cos.At(2), 12);
        Assert.Equal(1.0, new LrSchedule(1.0, "constant", 3, 10).At(0));
        Assert.Equal(0.0, new LrSchedule(1.0, "constant_with_warmup", 3, 10).At(0));
        Assert.Equal(2, LrSchedule.For(new KtoConfig { WarmupRatio = 0.15 }, 10).WarmupSteps);
    }
}
