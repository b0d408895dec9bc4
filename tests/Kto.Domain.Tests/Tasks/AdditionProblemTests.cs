using Kto.Domain.Tasks;

namespace Kto.Domain.Tests.Tasks;

public class AdditionProblemTests
{
    private readonly AdditionTask _task = new();

    private int SplitSize(TaskSplit split)
    {
        int n = 0;
        for (int a = 10; a <= 99; a++)
            for (int b = 10; b <= 99; b++)
                if (_task.SplitOf(a, b) == split) n++;
        return n;
    }

    [Fact]
    public void AboutOneProblemInTenIsHeldOut()
    {
        int eval = SplitSize(TaskSplit.Eval);
        Assert.InRange(eval, 8100 * 0.08, 8100 * 0.12);
        // Pinned: changing the hash would move eval problems into the training data of earlier runs.
        Assert.Equal(847, eval);
        Assert.Equal(14, Enumerable.Range(0, 100).Count(i => new AdditionTask(1).SplitOf(i / 10, i % 10) == TaskSplit.Eval));
        Assert.Equal(8100, eval + SplitSize(TaskSplit.Train));
    }

    [Fact]
    public void TrainAndEvalProblemsNeverOverlapWhateverTheSeeds()
    {
        int eval = SplitSize(TaskSplit.Eval);
        var evalAll = _task.Problems(TaskSplit.Eval, eval, 1).ToHashSet();
        Assert.Equal(eval, evalAll.Count);
        foreach (long seed in new long[] { 0, 1, 42, -7 })
        {
            var train = _task.Problems(TaskSplit.Train, 3000, seed);
            Assert.DoesNotContain(train, evalAll.Contains);
            Assert.All(train, p => Assert.Equal(TaskSplit.Train, _task.SplitOf(p.A, p.B)));
            Assert.All(_task.Problems(TaskSplit.Eval, 100, seed), p => Assert.Contains(p, evalAll));
        }
    }

    [Fact]
    public void ProblemsAreDistinctInRangeAndFixedBySeed()
    {
        var a = _task.Problems(TaskSplit.Train, 500, 3);
        Assert.Equal(500, a.Distinct().Count());
        Assert.All(a, p => { Assert.InRange(p.A, 10, 99); Assert.InRange(p.B, 10, 99); });
        Assert.Equal(a, _task.Problems(TaskSplit.Train, 500, 3));
        Assert.NotEqual(a, _task.Problems(TaskSplit.Train, 500, 4));
        Assert.Empty(_task.Problems(TaskSplit.Eval, 0, 3));
    }

    [Fact]
    public void AskingForMoreThanTheSplitHoldsThrows()
    {
        int eval = SplitSize(TaskSplit.Eval);
        Assert.Equal(eval, _task.Problems(TaskSplit.Eval, eval, 0).Count);
        var e = Assert.Throws<ArgumentException>(() => _task.Problems(TaskSplit.Eval, eval + 1, 0));
        Assert.Contains($"holds only {eval}", e.Message);
        Assert.Throws<ArgumentException>(() => _task.Problems(TaskSplit.Train, -1, 0));
    }

    [Fact]
    public void LargeOperandsAreDrawnWithoutListingTheSplit()
    {
        var task = new AdditionTask(5);
        var p = task.Problems(TaskSplit.Eval, 200, 8);
        Assert.Equal(200, p.Distinct().Count());
        Assert.All(p, x => Assert.Equal(TaskSplit.Eval, task.SplitOf(x.A, x.B)));
        Assert.All(p, x => Assert.InRange(x.A, 10000, 99999));
        Assert.Equal(p, task.Problems(TaskSplit.Eval, 200, 8));
        Assert.Throws<ArgumentException>(() => task.Problems(TaskSplit.Eval, int.MaxValue, 8));
    }

    [Fact]
    public void ASplitIsTheSameForEveryDigitCountThatHasThePair()
    {
        var three = new AdditionTask(3);
        Assert.Equal(new AdditionTask(3).SplitOf(123, 456), three.SplitOf(123, 456));
        Assert.Contains(three.Problems(TaskSplit.Eval, 50, 1), p => p.A >= 100);
    }
}
