using Akka.Actor;
using Akka.Serialization;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Tests;

/// <summary>Every journal event and the snapshot survive the configured serializer unchanged.</summary>
public sealed class SerializerTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("ser", PersistenceConfig.Hocon("Data Source=:memory:", PersistenceConfig.SqliteProvider));

    public void Dispose() => _system.Dispose();

    private static readonly RunSpec Spec = new("r", "fp", 10, 3, true, 4, 2, 6, "{\"beta\":0.1}");

    public static TheoryData<IKtoMessage> Messages() =>
    [
        new RunStarted(Spec),
        new CoordinatorIncarnated(7),
        new CheckpointSaved(4, "/runs/x/checkpoint-4", "abc"),
        new RunPaused(),
        new RunResumed(),
        new RunStopped(),
        new RunCompleted(6),
        new RegisterTrainer("t1", "127.0.0.1:7001", -1),
        new TrainerRegistered("t1", 4, 2, 3),
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void EventsRoundTripThroughTheBoundSerializer(IKtoMessage message)
    {
        Serializer serializer = _system.Serialization.FindSerializerFor(message);
        Assert.IsType<KtoMessageSerializer>(serializer);
        string manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        object back = _system.Serialization.Deserialize(serializer.ToBinary(message), serializer.Identifier, manifest);
        Assert.Equal(message, back);
    }

    [Fact]
    public void StepCommitsAndSnapshotsRoundTrip()
    {
        var commit = new StepCommitted(3, (1L << 32) + 5, ["t1", "t2"], 0xDEADBEEFCAFEUL);
        var s = (KtoMessageSerializer)_system.Serialization.FindSerializerFor(commit);
        var back = (StepCommitted)s.FromBinary(s.ToBinary(commit), s.Manifest(commit));
        Assert.Equal((commit.Step, commit.Generation, commit.Checksum), (back.Step, back.Generation, back.Checksum));
        Assert.Equal(commit.Members, back.Members);

        var state = RunState.Replay([new RunStarted(Spec), new CoordinatorIncarnated(1), commit with { Step = 0 }, new CheckpointSaved(1, "/c", "h")]);
        var snap = RunSnapshot.Of(state);
        var snapBack = (RunSnapshot)s.FromBinary(s.ToBinary(snap), s.Manifest(snap));
        RunState restored = snapBack.ToState();
        Assert.Equal(state.Spec, restored.Spec);
        Assert.Equal(state.CommittedSteps, restored.CommittedSteps);
        Assert.Equal(state.Incarnation, restored.Incarnation);
        Assert.Equal(state.Phase, restored.Phase);
        Assert.Equal(state.Checkpoints, restored.Checkpoints);
    }

    [Fact]
    public void ForeignPayloadsAreRefused()
    {
        var s = (KtoMessageSerializer)_system.Serialization.FindSerializerFor(new RunPaused());
        Assert.ThrowsAny<Exception>(() => s.FromBinary([0xc1, 0x00], "E"));
        Assert.ThrowsAny<Exception>(() => s.FromBinary([], "Z"));
        Assert.Throws<ArgumentException>(() => s.ToBinary("not a message"));
    }
}
