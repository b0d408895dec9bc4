using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Training;

/// <summary>
/// Two replicas writing the checkpoint of the same step (the cluster's final checkpoint can be asked of two): a
/// complete checkpoint with the same bits is kept, never deleted and replaced under a reader; one that differs is replaced.
/// </summary>
public sealed class CheckpointWriteTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheSameStepWrittenAgainKeepsAnIdenticalCheckpointAndReplacesADifferentOne()
    {
        using var g = new Generator(1);
        using CausalLm model = TrainingFixture.ModelConfig("gpt2").CreateModel(g);
        using var optimizer = new AdamW(model.named_parameters().Select(p => (p.name, p.parameter)), 0.9, 0.999, 1e-8, 0);
        var state = new TrainerState(5, "fingerprint", 10, 0.5);
        string first = TrainingCheckpoint.Save(_dir, model, optimizer, state);
        string stateFile = Path.Combine(first, TrainingCheckpoint.StateFile);
        File.SetLastWriteTimeUtc(stateFile, new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc)); // a mark the same directory keeps

        Assert.Equal(first, TrainingCheckpoint.Save(_dir, model, optimizer, state));
        Assert.Equal(new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc), File.GetLastWriteTimeUtc(stateFile)); // kept, not rewritten
        Assert.Single(Directory.GetDirectories(_dir));                                                       // no temporary left

        using (no_grad()) model.parameters().First().add_(1);
        TrainingCheckpoint.Save(_dir, model, optimizer, state);
        Assert.NotEqual(new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc), File.GetLastWriteTimeUtc(stateFile)); // other bits: replaced
        Assert.Equal(5, TrainingCheckpoint.ReadVerified(first).GlobalStep);
    }
}
