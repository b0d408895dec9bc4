using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Model;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Training;

/// <summary>KTO does what it is for: desirable completions gain probability relative to the reference, undesirable ones lose it.</summary>
public sealed class LogRatioMovementTests : IDisposable
{
    private readonly TrainingFixture _f = new(examples: 32, desirableShare: 0.5, seed: 21);

    public void Dispose() => _f.Dispose();

    [Theory]
    [InlineData(Kto.Domain.Loss.KtoLossType.Kto)]
    [InlineData(Kto.Domain.Loss.KtoLossType.ApoZeroUnpaired)]
    public void DesirableLogRatiosRiseAndUndesirableOnesFall(Kto.Domain.Loss.KtoLossType lossType)
    {
        var c = _f.Config("move", c => c with { LossType = lossType, NumTrainEpochs = 4, LearningRate = 5e-3 });
        TrainResult r = TrainingFixture.Train(c);

        var lengths = new DatasetLoadOptions(c.MaxLength, c.MaxPromptLength, null);
        LoadedDataset data = KtoDatasetLoader.Load(_f.DataPath, ByteTokenizer.Instance, lengths);
        var seqs = data.Examples.Select(e => (e.PromptIds, e.CompletionIds)).ToList();
        using CausalLm policy = ModelCheckpoint.Load(r.FinalCheckpoint);
        using CausalLm reference = ModelCheckpoint.Load(_f.ModelDir);
        double[] p = SequenceLogProbs.Score(policy, seqs, ByteTokenizer.Eos, 16, CPU);
        double[] q = SequenceLogProbs.Score(reference, seqs, ByteTokenizer.Eos, 16, CPU);
        double desirable = data.Examples.Select((e, i) => (e, i)).Where(x => x.e.Label).Average(x => p[x.i] - q[x.i]);
        double undesirable = data.Examples.Select((e, i) => (e, i)).Where(x => !x.e.Label).Average(x => p[x.i] - q[x.i]);
        Assert.True(desirable > 0, $"desirable mean log-ratio {desirable}");
        Assert.True(undesirable < 0, $"undesirable mean log-ratio {undesirable}");
    }
}
