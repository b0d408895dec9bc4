using Kto.Domain.Tasks;

namespace Kto.Domain.Tests.Tasks;

public class AdditionCheckerTests
{
    private readonly AdditionTask _task = new();

    [Fact]
    public void PromptAndAnswerReadAsExpected()
    {
        Assert.Equal("37+45=", _task.Prompt(37, 45));
        Assert.Equal("82", _task.Answer(37, 45));
        Assert.Equal("198", _task.Answer(99, 99));
        Assert.Equal("addition", _task.Name);
        Assert.Throws<ArgumentOutOfRangeException>(() => _task.Prompt(9, 45));
        Assert.Throws<ArgumentOutOfRangeException>(() => _task.Answer(37, 100));
    }

    [Theory]
    [InlineData("82", true)]
    [InlineData(" 82 ", true)]
    [InlineData("82\n", true)]
    [InlineData("\t82", true)]
    [InlineData("", false)]
    [InlineData("   ", false)]
    [InlineData("082", false)]
    [InlineData("+82", false)]
    [InlineData("-82", false)]
    [InlineData("8 2", false)]
    [InlineData("82abc", false)]
    [InlineData("82.0", false)]
    [InlineData("82 83", false)]
    [InlineData("81", false)]
    [InlineData("72", false)]
    [InlineData("٨٢", false)]        // Arabic-Indic digits
    [InlineData("８２", false)]       // full-width digits
    [InlineData("99999999999999999999999999999999", false)]
    [InlineData("82\u0000", false)]
    public void CompletionsAreCheckedExactly(string completion, bool correct)
    {
        Assert.Equal(correct, _task.IsCorrect("37+45=", completion));
    }

    [Theory]
    [InlineData("")]
    [InlineData("37+45")]
    [InlineData("37 + 45 =")]
    [InlineData(" 37+45=")]
    [InlineData("037+45=")]
    [InlineData("+45=")]
    [InlineData("37+=")]
    [InlineData("=")]
    [InlineData("+=")]
    [InlineData("a+b=")]
    [InlineData("1+2+3=")]
    [InlineData("37-45=")]
    [InlineData("-37+45=")]
    [InlineData("٣٧+٤٥=")]
    [InlineData("1234567890123456789+1=")]
    public void MalformedPromptsAreNeverCorrect(string prompt)
    {
        Assert.False(_task.IsCorrect(prompt, "82"));
        Assert.False(_task.IsCorrect(prompt, ""));
    }

    [Fact]
    public void NullsAreFalseNotExceptions()
    {
        Assert.False(_task.IsCorrect(null!, "82"));
        Assert.False(_task.IsCorrect("37+45=", null!));
    }

    [Fact]
    public void AnyPlainDecimalOperandsAreJudged()
    {
        Assert.True(_task.IsCorrect("3+4=", "7"));
        Assert.True(_task.IsCorrect("0+0=", "0"));
        Assert.True(_task.IsCorrect("999999999999999999+1=", "1000000000000000000"));
        Assert.True(_task.IsCorrect("999999999999999999+999999999999999999=", "1999999999999999998"));
        Assert.False(_task.IsCorrect("0+0=", "00"));
    }

    [Fact]
    public void TheRightAnswerOfEveryProblemIsCorrect()
    {
        for (int a = 10; a <= 99; a++)
            for (int b = 10; b <= 99; b++)
                Assert.True(_task.IsCorrect(_task.Prompt(a, b), _task.Answer(a, b)));
    }

    [Theory]
    [InlineData(37, 45, "72", true)]
    [InlineData(55, 45, "90", true)]
    [InlineData(50, 50, "0", true)]
    [InlineData(95, 87, "72", true)]
    [InlineData(19, 81, "90", true)]
    [InlineData(12, 34, "46", false)]
    [InlineData(45, 54, "99", false)]
    public void CarryDroppedAnswerDropsEveryCarry(int a, int b, string dropped, bool carry)
    {
        Assert.Equal(dropped, _task.CarryDroppedAnswer(a, b));
        Assert.Equal(carry, _task.HasCarry(a, b));
    }

    [Fact]
    public void CarryDroppedAnswerIsRightExactlyWhenNothingCarries()
    {
        int carrying = 0;
        for (int a = 10; a <= 99; a++)
            for (int b = 10; b <= 99; b++)
            {
                bool carry = _task.HasCarry(a, b);
                carrying += carry ? 1 : 0;
                Assert.Equal(!carry, _task.CarryDroppedAnswer(a, b) == _task.Answer(a, b));
                Assert.Equal(!carry, _task.IsCorrect(_task.Prompt(a, b), _task.CarryDroppedAnswer(a, b)));
            }
        // 1 − P(no carry) = 1 − (55/100 · 36/81).
        Assert.Equal(8100 - 55 * 36, carrying);
    }

    [Fact]
    public void OtherDigitCounts()
    {
        var one = new AdditionTask(1);
        Assert.Equal((0, 9), (one.Lowest, one.Highest));
        Assert.Equal("0+9=", one.Prompt(0, 9));
        Assert.Equal("2", one.CarryDroppedAnswer(5, 7));
        var three = new AdditionTask(3);
        Assert.Equal((100, 999), (three.Lowest, three.Highest));
        Assert.Equal("1000", three.Answer(500, 500));
        Assert.Equal("0", three.CarryDroppedAnswer(500, 500));
        Assert.Equal("1998", new AdditionTask(3).Answer(999, 999));
        Assert.Equal("1999999998", new AdditionTask(9).Answer(999999999, 999999999));
        Assert.Throws<ArgumentException>(() => new AdditionTask(0));
        Assert.Throws<ArgumentException>(() => new AdditionTask(10));
    }

    [Fact]
    public void RegistryFindsTheTaskByName()
    {
        Assert.Equal(["addition"], TaskRegistry.Names);
        var t = Assert.IsType<AdditionTask>(TaskRegistry.Get("addition", 3));
        Assert.Equal(3, t.Digits);
        Assert.Equal(2, ((AdditionTask)TaskRegistry.Get("addition")).Digits);
        Assert.Contains("addition", Assert.Throws<ArgumentException>(() => TaskRegistry.Get("sorting")).Message);
    }
}
