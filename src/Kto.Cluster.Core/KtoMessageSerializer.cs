using Akka.Actor;
using Akka.Serialization;
using Kto.Domain.Cluster;
using MessagePack;

namespace Kto.Cluster.Core;

/// <summary>
/// The one serializer of the Kto protocol: MessagePack with the explicit <c>[Key]</c> contracts and the union of
/// <see cref="IKtoMessage"/> subtypes declared on the messages themselves. Untrusted-data security is on, and no
/// typeless or contractless resolver is used, so a peer can only ever produce declared message types.
/// </summary>
public sealed class KtoMessageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka's serializer id for this serializer (ids below 100 are Akka's own).</summary>
    public const int Id = 4711;

    /// <summary>Manifests: the message family a payload belongs to.</summary>
    private const string EventManifest = "E";
    private const string SnapshotManifest = "S";
    private const string NodeManifest = "N";
    private const string ScoreManifest = "R";
    private const string CommandManifest = "C";

    private static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <inheritdoc />
    public override int Identifier => Id;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        IRunEvent => EventManifest,
        RunSnapshot => SnapshotManifest,
        INodeMessage => NodeManifest,
        IScoreRecord => ScoreManifest,
        ICommandMessage => CommandManifest,
        _ => throw new ArgumentException($"{o.GetType()} is not a Kto protocol message", nameof(o)),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj) => obj switch
    {
        IRunEvent e => MessagePackSerializer.Serialize(e, Options),
        RunSnapshot s => MessagePackSerializer.Serialize(s, Options),
        INodeMessage n => MessagePackSerializer.Serialize(n, Options),
        IScoreRecord r => MessagePackSerializer.Serialize(r, Options),
        ICommandMessage c => MessagePackSerializer.Serialize(c, Options),
        _ => throw new ArgumentException($"{obj.GetType()} is not a Kto protocol message", nameof(obj)),
    };

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        EventManifest => MessagePackSerializer.Deserialize<IRunEvent>(bytes, Options),
        SnapshotManifest => MessagePackSerializer.Deserialize<RunSnapshot>(bytes, Options),
        NodeManifest => MessagePackSerializer.Deserialize<INodeMessage>(bytes, Options),
        ScoreManifest => MessagePackSerializer.Deserialize<IScoreRecord>(bytes, Options),
        CommandManifest => MessagePackSerializer.Deserialize<ICommandMessage>(bytes, Options),
        _ => throw new System.Runtime.Serialization.SerializationException($"unknown Kto manifest \"{manifest}\""),
    };
}
