using MessagePack;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>The first frame on a new ring connection: the connecting member introduces itself to its successor.</summary>
[MessagePackObject]
public sealed class Hello
{
    /// <summary>Version of this wire protocol; <see cref="WireFormat.ProtocolVersion"/>.</summary>
    [Key(0)]
    public int Protocol { get; set; }

    /// <summary>Generation the sender joins.</summary>
    [Key(1)]
    public long Generation { get; set; }

    /// <summary>The sender's rank in that generation's member list.</summary>
    [Key(2)]
    public int Rank { get; set; }

    /// <summary>Members in that generation.</summary>
    [Key(3)]
    public int Size { get; set; }

    /// <summary>Hash of the ordered member list, so members with different lists never form a ring.</summary>
    [Key(4)]
    public ulong MembershipDigest { get; set; }
}
