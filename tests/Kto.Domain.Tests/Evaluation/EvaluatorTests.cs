using Kto.Domain.Evaluation;
using Kto.Domain.Generation;
using Kto.Domain.Model;
using Kto.Domain.Tasks;
using Kto.Domain.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Evaluation;

public sealed class EvaluatorTests : IDisposable
{
    private readonly GptLmHeadModel _model;
    private readonly GptLmHeadModel _other;
    private static readonly string[] Prompts = ["12+34=", "56+78=", "90+11=", "23+45="];

    public EvaluatorTests()
    {
        using var g = new Generator(5);
        _model = new GptLmHeadModel(new GptConfig(257, 16, 16, 1, 2, Tokenizer: "byte"), g);
        _other = new GptLmHeadModel(new GptConfig(257, 16, 16, 1, 2, Tokenizer: "byte"), g);
    }

    public void Dispose()
    {
        _model.Dispose();
        _other.Dispose();
    }

    /// <summary>Accepts exactly one completion text; a checker whose verdicts the test can predict.</summary>
    private sealed class Exactly(string accepted) : IVerifiableTask
    {
        public string Name => "exactly";
        public bool IsCorrect(string prompt, string completion) => completion == accepted;
    }

    [Fact]
    public void GreedyAccuracyIsTheCheckersVerdictOnGreedyCompletions()
    {
        var options = new EvalOptions(SamplesPerPrompt: 3, Seed: 2, MaxNewTokens: 4);
        int[][] ids = [.. Prompts.Select(ByteTokenizer.Instance.Encode)];
        int[][][] greedy = Sampler.Generate(_model, ids, new SamplingOptions(4, 0, 0, 1, 0), ByteTokenizer.Eos, 8, CPU);
        string first = ByteTokenizer.Instance.Decode(greedy[0][0]);
        var task = new Exactly(first);
        double expected = greedy.Count(g => ByteTokenizer.Instance.Decode(g[0]) == first) / (double)Prompts.Length;
        Assert.True(expected >= 0.25);

        EvalReport report = Evaluator.Run(_model, null, ByteTokenizer.Instance, task, Prompts, options, CPU);
        Assert.Equal(expected, report.GreedyAccuracy);
        Assert.Equal(12, report.Samples);
        Assert.Null(report.MeanLogRatio);
        Assert.Equal(report, Evaluator.Run(_model, null, ByteTokenizer.Instance, task, Prompts, options, CPU)); // reproducible
    }

    [Fact]
    public void LogRatiosAreZeroAgainstItselfAndSplitByVerdict()
    {
        var options = new EvalOptions(SamplesPerPrompt: 2, Seed: 1, MaxNewTokens: 3);
        var none = new Exactly("\u0001never");
        EvalReport self = Evaluator.Run(_model, _model, ByteTokenizer.Instance, none, Prompts, options, CPU);
        Assert.Equal(0.0, self.MeanLogRatio!.Value, 9);
        Assert.Null(self.MeanLogRatioDesirable);       // no sample accepted
        Assert.Equal(0.0, self.SampledDesirableRate);

        EvalReport other = Evaluator.Run(_model, _other, ByteTokenizer.Instance, none, Prompts, options, CPU);
        Assert.NotEqual(0.0, other.MeanLogRatio!.Value, 6);
        Assert.Equal(other.MeanLogRatio, other.MeanLogRatioUndesirable);
    }
}
