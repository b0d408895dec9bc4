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
        new CoordinatorIncarnated(8, "akka.tcp://kto@10.0.0.2:4053 (pid 77 on gpu-2)"),
        new RunStartedFromCheckpoint(24, "/runs/x/checkpoint-24", "abc"),
        new CheckpointFailed("t1", 40, "No space left on device"),
        new CheckpointSaved(4, "/runs/x/checkpoint-4", "abc"),
        new RunPaused(),
        new RunResumed(),
        new RunStopped(),
        new RunCompleted(6),
        new RegisterTrainer("t1", "127.0.0.1:7001", -1),
        new TrainerRegistered("t1", 4, 2, 3),
        new TrainerRegistered("t1", 4, 2, 3, Spec),
        new StepFailed("t2", 5, (2L << 32) + 9, "the ring broke"),
        new StepApply(5, (2L << 32) + 9, "/runs/out", 3),
        new StepApply(5, (2L << 32) + 9, null),
        new StepAbort(5, 7),
        new CheckpointWritten("t1", 8, "/runs/out/checkpoint-8", "ab12"),
        new LoadCheckpoint("/runs/out/checkpoint-8", 8),
        new FetchState(12, "akka.tcp://kto@127.0.0.1:4000/user/trainer"),
        new StateRequest(12, 3),
        new Reregister(2),
        new TrainerLeaving("t3"),
        new LeaveGranted("t3"),
        new RunStarted(Spec with { ReferenceHash = "ab12cd" }),
        new RegisterScorer("s1", null),
        new RegisterScorer("s1", "r"),
        new ScorerRegistered("s1", null, "no run has started yet"),
        new ScorerRegistered("s1", Spec with { ReferenceHash = "ab12cd" }, null),
        new WriteCheckpoint(40, "/runs/out", 2),
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
    public void StepProtocolMessagesWithArraysRoundTrip()
    {
        IKtoMessage[] messages =
        [
            new StepStart(7, (3L << 32) + 1, ["t1", "t2"], ["127.0.0.1:7001", "127.0.0.1:7002"], 3L << 32),
            new StepReduced("t2", 7, (3L << 32) + 1, 0xFEEDUL, [1.5, 2, -3.25], 0.75),
            new StateChunk(12, 3, 40, [1, 2, 3, 255]),
            new ScoreUnit(4, [9, 2, 7]),
            new UnitScored("s1", 4, [9, 2, 7], [-1.25, -30.5, -7], [-2, -0.5, -9.75]),
            new ReferenceScores(12, [9, 2], [-1.25, -30.5], [-2, -0.5]),
            new ScoresStored(4, [9, 2, 7], [-1.25, -30.5, -7], [-2, -0.5, -9.75]),
            new ScoresSnapshot(10, [2, 7], [-30.5, -7], [-0.5, -9.75]),
        ];
        foreach (IKtoMessage m in messages)
        {
            var s = (KtoMessageSerializer)_system.Serialization.FindSerializerFor(m);
            byte[] bytes = s.ToBinary(m);
            object back = s.FromBinary(bytes, s.Manifest(m));
            Assert.Equal(m.GetType(), back.GetType());
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(m, m.GetType()), System.Text.Json.JsonSerializer.Serialize(back, back.GetType()));
        }
        // A full state chunk stays below Akka.Remote's default 128000-byte frame.
        var chunk = new StateChunk(1, 0, 1, new byte[StateChunk.MaxBytes]);
        var serializer = (KtoMessageSerializer)_system.Serialization.FindSerializerFor(chunk);
        Assert.InRange(serializer.ToBinary(chunk).Length, StateChunk.MaxBytes, 128000 - 1024);
        // So do the largest scored unit and the largest part of a step's reference log-probs.
        int n = Kto.Domain.Training.ReferenceScoring.MaxUnitItems;
        int[] indices = [.. Enumerable.Range(int.MaxValue - n, n)];
        double[] values = [.. Enumerable.Repeat(-123.456789e10, n)];
        Assert.InRange(serializer.ToBinary(new UnitScored("scorer-with-a-long-name", int.MaxValue, indices, values, values)).Length, 1, 128000 - 1024);
        Assert.InRange(serializer.ToBinary(new ReferenceScores(int.MaxValue, indices, values, values)).Length, 1, 128000 - 1024);
    }

    /// <summary>
    /// Headers that lie: a command whose argument list claims 2^31 − 1 strings, a state chunk whose bytes claim 2 GiB,
    /// with nothing behind them. Each is refused before anything of the claimed size is allocated (MessagePack checks
    /// a count against the bytes left), so a peer cannot make a host allocate more than the frame it sent.
    /// </summary>
    [Fact]
    public void CollectionsWhoseHeadersClaimMoreThanTheFrameHoldsAreRefusedWithoutAllocatingThem()
    {
        var s = (KtoMessageSerializer)_system.Serialization.FindSerializerFor(new RunPaused());
        byte[] Str(string v) => [(byte)(0xa0 | v.Length), .. System.Text.Encoding.ASCII.GetBytes(v)];
        byte[] command = [0x92, 0x00, 0x97, .. Str("cluster"), .. Str("show"), 0xdd, 0x7f, 0xff, 0xff, 0xff];
        byte[] chunk = [0x92, 0x0b, 0x94, 0x00, 0x00, 0x01, 0xc6, 0x7f, 0xff, 0xff, 0xff];
        foreach (var (bytes, manifest) in new[] { (command, "C"), (chunk, "N") })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Assert.ThrowsAny<MessagePack.MessagePackSerializationException>(() => s.FromBinary(bytes, manifest));
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 1 << 20, $"{allocated} bytes allocated for a {bytes.Length}-byte payload");
        }
        // The same shapes with honest headers are read.
        Assert.Equal(new[] { "a" }, ((CommandRequest)s.FromBinary([0x92, 0x00, 0x97, .. Str("cluster"), .. Str("show"), 0x91, .. Str("a"), 0xc2, 0xc0, 0x00, 0xc0], "C")).Args);
        Assert.Equal(new byte[] { 7 }, ((StateChunk)s.FromBinary([0x92, 0x0b, 0x94, 0x00, 0x00, 0x01, 0xc4, 0x01, 0x07], "N")).Data);
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
