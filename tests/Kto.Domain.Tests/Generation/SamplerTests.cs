using Kto.Domain.Generation;
using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Generation;

public sealed class SamplerTests : IDisposable
{
    private readonly GptLmHeadModel _model = TinyModels.Create();

    private static readonly int[][] Prompts =
        [TinyModels.Ids("12+34="), TinyModels.Ids("7+8="), TinyModels.Ids("99+99="), TinyModels.Ids("1+2="), TinyModels.Ids("5")];

    public void Dispose() => _model.Dispose();

    private static SamplingOptions Greedy(int maxNew = 8, int samples = 1) => new(maxNew, 0, 0, 1.0, 0, samples);

    private static SamplingOptions Random(long seed, int maxNew = 8, int samples = 3) => new(maxNew, 1.0, 0, 1.0, seed, samples);

    private int[][][] Run(SamplingOptions o, int batchSize = 64, int eos = TinyModels.Eos, int[][]? prompts = null)
        => Sampler.Generate(_model, prompts ?? Prompts, o, eos, batchSize, CPU);

    /// <summary>Greedy decoding written out plainly: the whole sequence through forward, argmax of the last position.</summary>
    private int[] HandRolledGreedy(int[] prompt, int maxNew, int eos)
    {
        using var noGrad = torch.no_grad();
        var seq = prompt.ToList();
        var completion = new List<int>();
        while (completion.Count < maxNew && seq.Count < _model.Config.NPositions)
        {
            using var scope = torch.NewDisposeScope();
            Tensor logits = _model.forward(torch.tensor(seq.Select(i => (long)i).ToArray(), [1, seq.Count]));
            int next = (int)logits[0, seq.Count - 1].argmax().item<long>();
            if (next == eos) break;
            completion.Add(next);
            seq.Add(next);
        }
        return [.. completion];
    }

    [Fact]
    public void GreedyEqualsAHandRolledArgmaxLoop()
    {
        int[][][] got = Run(Greedy(maxNew: 10));
        for (int p = 0; p < Prompts.Length; p++)
            Assert.Equal(HandRolledGreedy(Prompts[p], 10, TinyModels.Eos), got[p][0]);
    }

    [Fact]
    public void ACompletionEndsAtTheFirstOfSeveralStopIds()
    {
        int[][][] free = Run(Greedy(maxNew: 10));
        int[] first = free[0][0];
        Assert.True(first.Length >= 3, "the tiny model's greedy completion is too short to cut");
        int stop = first[2];
        int[][][] cut = Sampler.Generate(_model, Prompts, Greedy(maxNew: 10), [TinyModels.Eos, stop], 64, CPU);
        Assert.Equal(first[..Array.IndexOf(first, stop)], cut[0][0]);
        for (int p = 0; p < Prompts.Length; p++)
            Assert.DoesNotContain(stop, cut[p][0]);
    }

    [Fact]
    public void GreedyIgnoresTheSeedAndRepeatsAcrossSamples()
    {
        int[][][] a = Run(Greedy(samples: 3) with { Seed = 1 });
        int[][][] b = Run(Greedy(samples: 3) with { Seed = 2 });
        for (int p = 0; p < Prompts.Length; p++)
        {
            Assert.Equal(3, a[p].Length);
            Assert.All(a[p], s => Assert.Equal(a[p][0], s));
            Assert.Equal(a[p][0], b[p][0]);
            Assert.NotSame(a[p][0], a[p][1]);
        }
    }

    [Fact]
    public void SamplingIsDeterministicForASeed()
    {
        Assert.Equal(Run(Random(5)), Run(Random(5)));
    }

    [Fact]
    public void DifferentSeedsAndDifferentSamplesDiffer()
    {
        int[][][] a = Run(Random(5)), b = Run(Random(6));
        Assert.NotEqual(a, b);
        // Each sample of a prompt draws from its own stream.
        Assert.Contains(a, samples => !samples[0].SequenceEqual(samples[1]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    public void ResultsDoNotDependOnTheBatchSize(int batchSize)
    {
        Assert.Equal(Run(Random(9, samples: 4)), Run(Random(9, samples: 4), batchSize));
        Assert.Equal(Run(Greedy(samples: 2)), Run(Greedy(samples: 2), batchSize));
    }

    [Fact]
    public void ResultsDoNotDependOnOtherPromptsInTheBatch()
    {
        int[][][] all = Run(Random(4));
        int[][][] alone = Run(Random(4), prompts: [Prompts[0]]);
        Assert.Equal(all[0], alone[0]);
    }

    [Fact]
    public void TopKOneAndATinyNucleusEqualGreedy()
    {
        int[][][] greedy = Run(Greedy(samples: 2));
        Assert.Equal(greedy, Run(new SamplingOptions(8, 1.0, 1, 1.0, 3, 2)));
        Assert.Equal(greedy, Run(new SamplingOptions(8, 0.7, 0, 1e-9, 3, 2)));
    }

    [Fact]
    public void ATinyTemperatureEqualsGreedy()
    {
        Assert.Equal(Run(Greedy(samples: 2)), Run(new SamplingOptions(8, 1e-6, 0, 1.0, 3, 2)));
        Assert.Equal(Run(Greedy(samples: 2)), Run(new SamplingOptions(8, 1e-300, 0, 1.0, 3, 2)));
    }

    [Fact]
    public void GenerationStopsAtEosAndLeavesItOut()
    {
        // Use as "EOS" the token the unrestricted run produces first at position j (the last new token, or the
        // first when the run repeats one token): the run must stop just before it.
        foreach (SamplingOptions o in new[] { Greedy(maxNew: 10), Random(3, maxNew: 10, samples: 1) })
        {
            int[] full = Run(o, prompts: [Prompts[0]])[0][0];
            Assert.Equal(10, full.Length);
            int j = Enumerable.Range(0, full.Length).Last(i => !full[..i].Contains(full[i]));
            if (!o.IsGreedy) Assert.True(j > 0);
            int[] stopped = Run(o, eos: full[j], prompts: [Prompts[0]])[0][0];
            Assert.Equal(full[..j], stopped);
        }
    }

    [Fact]
    public void MaxNewTokensIsRespected()
    {
        int[][][] longer = Run(Random(2, maxNew: 9));
        int[][][] shorter = Run(Random(2, maxNew: 4));
        for (int p = 0; p < Prompts.Length; p++)
            for (int s = 0; s < 3; s++)
            {
                Assert.True(shorter[p][s].Length <= 4);
                Assert.Equal(longer[p][s].Take(4), shorter[p][s]);
            }
    }

    [Fact]
    public void PromptPlusCompletionNeverExceedsNPositions()
    {
        int[] nearlyFull = TinyModels.Ids("12345678901234");   // 14 of 16 positions
        int[] full = TinyModels.Ids("1234567890123456");       // 16
        int[][][] got = Run(Random(1, maxNew: 10), prompts: [nearlyFull, full]);
        Assert.All(got[0], c => Assert.True(c.Length <= 2));
        Assert.Contains(got[0], c => c.Length == 2);
        Assert.All(got[1], Assert.Empty);
        var e = Assert.Throws<ArgumentException>(() => Run(Greedy(), prompts: [TinyModels.Ids("12345678901234567")]));
        Assert.Contains("n_positions", e.Message);
    }

    [Fact]
    public void RunsInEvalModeWithoutGradientAndRestoresTheMode()
    {
        _model.train();
        Run(Greedy());
        Assert.True(_model.training);
        _model.eval();
        Run(Greedy());
        Assert.False(_model.training);
    }

    [Fact]
    public void ReportsProgressInCompletions()
    {
        var seen = new List<int>();
        Sampler.Generate(_model, Prompts, Greedy(samples: 2), TinyModels.Eos, 2, CPU, seen.Add);
        Assert.Equal(Prompts.Length * 2, seen[^1]);
        Assert.Equal(seen.OrderBy(x => x), seen);
    }

    [Fact]
    public void BadArgumentsAreClearErrors()
    {
        Assert.Contains("batch size", Assert.Throws<ArgumentException>(() => Run(Greedy(), batchSize: 0)).Message);
        Assert.Contains("EOS", Assert.Throws<ArgumentException>(() => Run(Greedy(), eos: 257)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => Run(Greedy(), prompts: [[]])).Message);
        Assert.Contains("300", Assert.Throws<ArgumentException>(() => Run(Greedy(), prompts: [[1, 300]])).Message);
        Assert.Empty(Run(Greedy(), prompts: []));
    }
}
