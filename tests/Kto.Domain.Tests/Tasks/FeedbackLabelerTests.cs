using Kto.Domain.Tasks;

namespace Kto.Domain.Tests.Tasks;

public class FeedbackLabelerTests
{
    private static readonly AdditionTask Task = new();

    /// <summary><paramref name="good"/> right and <paramref name="bad"/> wrong answers, interleaved, all distinct.</summary>
    private static List<Sample> Samples(int good, int bad)
    {
        var problems = Task.Problems(TaskSplit.Train, good + bad, 1);
        var rows = new List<Sample>();
        int g = 0, b = 0;
        for (int i = 0; i < good + bad; i++)
        {
            var (x, y) = problems[i];
            bool right = b >= bad || (g < good && (long)g * bad <= (long)b * good);
            rows.Add(new Sample(Task.Prompt(x, y), right ? Task.Answer(x, y) : "wrong"));
            if (right) g++; else b++;
        }
        return rows;
    }

    private static void AssertSubsequence(IReadOnlyList<Sample> all, IReadOnlyList<LabelledSample> kept)
    {
        int i = 0;
        foreach (var k in kept)
        {
            while (i < all.Count && (all[i].Prompt != k.Prompt || all[i].Completion != k.Completion)) i++;
            Assert.True(i < all.Count, "kept rows are not in the original order");
            i++;
        }
    }

    [Fact]
    public void WithoutAShareEverySampleIsLabelledInOrder()
    {
        var samples = Samples(7, 5);
        var (rows, d, u) = FeedbackLabeler.Label(samples, Task, null, 0);
        Assert.Equal((7, 5), (d, u));
        Assert.Equal(samples.Select(s => (s.Prompt, s.Completion)), rows.Select(r => (r.Prompt, r.Completion)));
        Assert.All(rows, r => Assert.Equal(r.Completion != "wrong", r.Label));
    }

    [Fact]
    public void TooManyDesirableRowsAreThinnedToTheShare()
    {
        var samples = Samples(60, 40);
        var (rows, d, u) = FeedbackLabeler.Label(samples, Task, 0.3, 3);
        // 0.3 · 40 / 0.7 = 17.1: 17 desirable (share 0.298) beats 18 (0.310).
        Assert.Equal((17, 40), (d, u));
        Assert.Equal(57, rows.Count);
        Assert.Equal(17, rows.Count(r => r.Label));
        AssertSubsequence(samples, rows);
    }

    [Fact]
    public void TooManyUndesirableRowsAreThinnedToTheShare()
    {
        var samples = Samples(10, 30);
        var (rows, d, u) = FeedbackLabeler.Label(samples, Task, 0.5, 3);
        Assert.Equal((10, 10), (d, u));
        Assert.Equal(20, rows.Count);
        AssertSubsequence(samples, rows);
    }

    [Fact]
    public void TheKeptCountIsTheBestPossible()
    {
        foreach (int good in new[] { 1, 3, 10, 25 })
            foreach (int bad in new[] { 1, 4, 9, 30 })
                foreach (double share in new[] { 0.1, 0.3, 0.5, 0.57, 0.9 })
                {
                    var (rows, d, u) = FeedbackLabeler.Label(Samples(good, bad), Task, share, 0);
                    Assert.Equal(rows.Count, d + u);
                    Assert.True(d == good || u == bad, "both classes were thinned");
                    double miss = Math.Abs((double)d / (d + u) - share);
                    // No other choice that drops from one class only gets closer, or as close with more rows.
                    for (int dd = 0; dd <= good; dd++)
                        for (int uu = 0; uu <= bad; uu++)
                        {
                            if ((dd < good && uu < bad) || dd + uu == 0) continue;
                            double other = Math.Abs((double)dd / (dd + uu) - share);
                            Assert.False(other < miss - 1e-12, $"{good}/{bad} at {share}: kept {d}/{u}, but {dd}/{uu} is closer");
                            if (Math.Abs(other - miss) <= 1e-12) Assert.True(dd + uu <= d + u, $"{good}/{bad} at {share}: {dd}/{uu} keeps more");
                        }
                }
    }

    [Fact]
    public void TheSeedChoosesWhichRowsGo()
    {
        var samples = Samples(60, 40);
        var a = FeedbackLabeler.Label(samples, Task, 0.3, 1).Rows;
        Assert.Equal(a, FeedbackLabeler.Label(samples, Task, 0.3, 1).Rows);
        Assert.NotEqual(a, FeedbackLabeler.Label(samples, Task, 0.3, 2).Rows);
    }

    [Fact]
    public void ASingleClassIsKeptWhole()
    {
        Assert.Equal((5, 0), (FeedbackLabeler.Label(Samples(5, 0), Task, 0.3, 0).Desirable, FeedbackLabeler.Label(Samples(5, 0), Task, 0.3, 0).Undesirable));
        Assert.Equal(4, FeedbackLabeler.Label(Samples(0, 4), Task, 0.3, 0).Rows.Count);
        Assert.Empty(FeedbackLabeler.Label([], Task, 0.3, 0).Rows);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.5)]
    [InlineData(double.NaN)]
    public void AShareOutsideTheOpenIntervalThrows(double share)
    {
        Assert.Throws<ArgumentException>(() => FeedbackLabeler.Label(Samples(2, 2), Task, share, 0));
    }
}
