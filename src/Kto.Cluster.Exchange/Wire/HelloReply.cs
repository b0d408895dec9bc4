using MessagePack;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>The successor's answer to a <see cref="Hello"/>: the connection becomes a ring link, or is closed.</summary>
[MessagePackObject]
public sealed class HelloReply
{
    /// <summary>True when the connection is the successor's predecessor link for the generation.</summary>
    [Key(0)]
    public bool Accepted { get; set; }

    /// <summary>Why it was refused (empty when accepted).</summary>
    [Key(1)]
    public string Reason { get; set; } = "";

    /// <summary>The newest generation the successor has joined when it answered.</summary>
    [Key(2)]
    public long Generation { get; set; }
}
