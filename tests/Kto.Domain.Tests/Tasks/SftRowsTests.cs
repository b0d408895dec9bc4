using Kto.Domain.Tasks;

namespace Kto.Domain.Tests.Tasks;

public class SftRowsTests
{
    private readonly AdditionTask _task = new();

    private static (int A, int B) Operands(string prompt)
    {
        Assert.True(AdditionTask.TryParsePrompt(prompt, out long a, out long b));
        return ((int)a, (int)b);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(0.7)]
    [InlineData(1.0)]
    public void OnlyTheChosenShareOfCarryProblemsIsWrong(double share)
    {
        var rows = _task.SftRows(1000, share, 5);
        Assert.Equal(1000, rows.Count);
        Assert.Equal(1000, rows.Select(r => r.Prompt).Distinct().Count());
        int carrying = 0, wrong = 0;
        foreach (var (prompt, completion) in rows)
        {
            var (a, b) = Operands(prompt);
            Assert.Equal(TaskSplit.Train, _task.SplitOf(a, b));
            bool correct = _task.IsCorrect(prompt, completion);
            if (!_task.HasCarry(a, b))
            {
                Assert.True(correct, prompt);
                continue;
            }
            carrying++;
            if (!correct)
            {
                wrong++;
                Assert.Equal(_task.CarryDroppedAnswer(a, b), completion);
            }
        }
        Assert.Equal((int)Math.Round(share * carrying, MidpointRounding.AwayFromZero), wrong);
    }

    [Fact]
    public void RowsAreFixedBySeedAndUseTheTrainProblemsOfThatSeed()
    {
        var a = _task.SftRows(200, 0.6, 9);
        Assert.Equal(a, _task.SftRows(200, 0.6, 9));
        Assert.NotEqual(a, _task.SftRows(200, 0.6, 10));
        Assert.Equal(_task.Problems(TaskSplit.Train, 200, 9).Select(p => _task.Prompt(p.A, p.B)), a.Select(r => r.Prompt));
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.1)]
    [InlineData(double.NaN)]
    public void AShareOutsideZeroToOneThrows(double share)
    {
        Assert.Throws<ArgumentException>(() => _task.SftRows(10, share, 0));
    }

    [Fact]
    public void BeyondTheSplitProblemsRepeatInFreshOrders()
    {
        int capacity = _task.SplitCapacity(TaskSplit.Train);
        Assert.Equal(7253, capacity);
        var rows = _task.SftRows(capacity + 500, 0.7, 3);
        Assert.Equal(capacity + 500, rows.Count);
        Assert.Equal(capacity, rows.Take(capacity).Select(r => r.Prompt).Distinct().Count());
        Assert.Equal(500, rows.Skip(capacity).Select(r => r.Prompt).Distinct().Count());
        Assert.All(rows, r => Assert.Equal(TaskSplit.Train, _task.SplitOf(int.Parse(r.Prompt.Split('+')[0]), int.Parse(r.Prompt.Split('+')[1].TrimEnd('=')))));
    }
}
