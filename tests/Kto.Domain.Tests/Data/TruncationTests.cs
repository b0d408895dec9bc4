using Kto.Domain.Data;

namespace Kto.Domain.Tests.Data;

public class TruncationTests
{
    private static int[] Range(int start, int count) => [.. Enumerable.Range(start, count)];

    [Fact]
    public void FittingPairIsUnchanged()
    {
        int[] prompt = Range(1, 3), completion = Range(10, 3);
        var fit = Truncation.Apply(prompt, completion, new DatasetLoadOptions(6, 2, null));
        Assert.NotNull(fit);
        Assert.Same(prompt, fit.Value.Prompt);
        Assert.Same(completion, fit.Value.Completion);
    }

    [Fact]
    public void LongPromptKeepsItsEnd()
    {
        var fit = Truncation.Apply(Range(1, 10), [20, 21], new DatasetLoadOptions(8, 4, null));
        Assert.Equal([7, 8, 9, 10], fit!.Value.Prompt);
        Assert.Equal([20, 21], fit.Value.Completion);
    }

    [Fact]
    public void CompletionIsCutToTheRoomLeftKeepingItsStart()
    {
        var fit = Truncation.Apply(Range(1, 3), Range(10, 10), new DatasetLoadOptions(6, 4, null));
        Assert.Equal([1, 2, 3], fit!.Value.Prompt);
        Assert.Equal([10, 11, 12], fit.Value.Completion);
    }

    [Fact]
    public void BothCutWhenPromptAloneIsNotEnough()
    {
        var fit = Truncation.Apply(Range(1, 10), Range(20, 10), new DatasetLoadOptions(8, 5, null));
        Assert.Equal([6, 7, 8, 9, 10], fit!.Value.Prompt);
        Assert.Equal([20, 21, 22], fit.Value.Completion);
    }

    [Fact]
    public void MaxCompletionLengthCapsFirst()
    {
        var fit = Truncation.Apply(Range(1, 2), Range(10, 10), new DatasetLoadOptions(100, 50, 4));
        Assert.Equal([1, 2], fit!.Value.Prompt);
        Assert.Equal([10, 11, 12, 13], fit.Value.Completion);

        // The cap comes before the length check: 6 + 4 = 10 fits, so the prompt stays whole.
        fit = Truncation.Apply(Range(1, 6), Range(10, 10), new DatasetLoadOptions(10, 3, 4));
        Assert.Equal(Range(1, 6), fit!.Value.Prompt);
        Assert.Equal([10, 11, 12, 13], fit.Value.Completion);
    }

    [Fact]
    public void NoRoomForACompletionTokenGivesNull()
    {
        Assert.Null(Truncation.Apply(Range(1, 10), [20, 21], new DatasetLoadOptions(4, 4, null)));
        Assert.Null(Truncation.Apply(Range(1, 10), [20, 21], new DatasetLoadOptions(4, 9, null)));
        Assert.Null(Truncation.Apply([1], [], new DatasetLoadOptions(4, 2, null)));
    }

    [Fact]
    public void OneCompletionTokenLeftIsKept()
    {
        var fit = Truncation.Apply(Range(1, 10), [20, 21], new DatasetLoadOptions(4, 3, null));
        Assert.Equal([8, 9, 10], fit!.Value.Prompt);
        Assert.Equal([20], fit.Value.Completion);
    }

    [Fact]
    public void InputsAreNotModified()
    {
        int[] prompt = Range(1, 10), completion = Range(20, 10);
        Truncation.Apply(prompt, completion, new DatasetLoadOptions(8, 5, 6));
        Assert.Equal(Range(1, 10), prompt);
        Assert.Equal(Range(20, 10), completion);
    }

    [Theory]
    [InlineData(0, 0, null)]
    [InlineData(4, -1, null)]
    [InlineData(4, 2, 0)]
    public void BadBudgetsThrow(int maxLength, int maxPrompt, int? maxCompletion) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Truncation.Apply([1], [2], new DatasetLoadOptions(maxLength, maxPrompt, maxCompletion)));
}
