using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Training;

/// <summary>Scoring units, the table of stored reference log-probs, and references supplied from outside.</summary>
public sealed class ReferenceScoringTests : IDisposable
{
    private readonly TrainingFixture _f = new(examples: 22);

    public void Dispose() => _f.Dispose();

    [Theory]
    [InlineData(22, 4, true)]
    [InlineData(22, 4, false)]
    [InlineData(7, 10, true)]
    [InlineData(5000, 3000, true)]
    public void UnitsFollowTheFirstEpochAndHoldEveryExampleOnce(int count, int batch, bool shuffle)
    {
        var plan = new BatchPlan(count, 11, shuffle, batch, accumulation: 2);
        int[][] units = ReferenceScoring.Units(plan);
        Assert.Equal(plan.EpochOrder(0), units.SelectMany(u => u));
        int size = Math.Min(batch, ReferenceScoring.MaxUnitItems);
        Assert.All(units[..^1], u => Assert.Equal(size, u.Length));
        Assert.InRange(units[^1].Length, 1, size);
        // With units no larger than a micro-batch, unit k is the first epoch's micro-batch k.
        if (batch <= ReferenceScoring.MaxUnitItems)
            for (int s = 0; s < plan.StepsPerEpoch; s++)
                for (int m = 0; m < plan.Step(s).Count; m++)
                    Assert.Equal(plan.Step(s)[m], units[s * plan.Accumulation + m]);
    }

    [Fact]
    public void TheTableKeepsTheFirstValueOfAnIndexAndRejectsBadInput()
    {
        var t = new ReferenceScoreTable(5);
        Assert.Equal(2, t.Add([1, 3], [-1.5, -2.5], [-0.5, -0.25]));
        Assert.Equal(1, t.Add([3, 4], [-9, -4.5], [-9, -0.75]));
        Assert.Equal(3, t.Stored);
        Assert.True(t.HasAll([1, 3, 4]));
        Assert.False(t.HasAll([0, 1]));
        var (idx, c, kl) = t.Get([4, 1, 3]);
        Assert.Equal([4, 1, 3], idx);
        Assert.Equal([-4.5, -1.5, -2.5], c);
        Assert.Equal([-0.75, -0.5, -0.25], kl);
        Assert.Throws<KeyNotFoundException>(() => t.Get([0]));
        Assert.Throws<ArgumentException>(() => t.Add([5], [0], [0]));
        Assert.Throws<ArgumentException>(() => t.Add([-1], [0], [0]));
        Assert.Throws<ArgumentException>(() => t.Add([0, 2], [0], [0, 0]));
        Assert.Equal(3, t.Stored);

        ReferenceScoreTable back = ReferenceScoreTable.FromSnapshot(t.ToSnapshot());
        Assert.Equal(t.Stored, back.Stored);
        var (_, bc, bkl) = back.Get([4, 1, 3]);
        Assert.Equal(c, bc);
        Assert.Equal(kl, bkl);
        Assert.False(back.Has(0));
    }

    [Fact]
    public void ASuppliedReferenceAnswersWithTheValuesGivenAndNamesAMissingExample()
    {
        var supplied = new SuppliedReference();
        var items = new[] { Item(0), Item(2) };
        supplied.Supply([2, 0], [-3.0, -1.0], [-0.3, -0.1]);
        Assert.Equal([new ReferenceLogps(-1.0, -0.1), new ReferenceLogps(-3.0, -0.3)], supplied.Score(items));
        var e = Assert.Throws<InvalidOperationException>(() => supplied.Score([Item(1)]));
        Assert.Contains("example 1", e.Message);
        Assert.Throws<ArgumentException>(() => supplied.Supply([1], [0.0, 1.0], [0.0]));
    }

    [Fact]
    public void ATrainerWithSuppliedScoresNeverOpensTheReferenceModel()
    {
        // The reference directory does not exist: only a setup that never loads the reference can succeed.
        var config = _f.Config("supplied", c => c with { PrecomputeRefLogProbs = true, RefModelNameOrPath = Path.Combine(_f.Dir, "no-such-reference") });
        Assert.ThrowsAny<Exception>(() => TrainingSetup.Prepare(config, NullObserver.Instance).Dispose());
        var supplied = new SuppliedReference();
        using TrainingSetup setup = TrainingSetup.Prepare(config, NullObserver.Instance, supplied);
        Assert.Same(supplied, setup.Reference);
    }

    [Fact]
    public void UnitByUnitScoresEqualTheSingleProcessPrecomputation()
    {
        // What a scorer node computes per unit is exactly what one process caches (same batches, same order).
        var config = _f.Config("pre", c => c with { PrecomputeRefLogProbs = true, Shuffle = true });
        using TrainingSetup setup = TrainingSetup.Prepare(config, NullObserver.Instance);
        using var reference = Kto.Domain.Checkpoints.ModelCheckpoint.Load(config.ModelNameOrPath, setup.Device);
        foreach (int[] unit in ReferenceScoring.Units(BatchPlan.For(config, setup.Data.Items.Count)))
        {
            var items = unit.Select(i => setup.Data.Items[i]).ToList();
            Assert.Equal(setup.Reference.Score(items), ReferenceScoring.Score(reference, items, setup.Tokenizer.EosTokenId, setup.Device, scoreKl: true));
        }
    }

    private static TrainItem Item(int index) => new(index, new Kto.Domain.Data.KtoExample([1], [2], true, index), [1], [3]);
}
