using MessagePack;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>
/// The MessagePack header in front of every data frame on a ring connection; the frame's payload, <see cref="ByteLength"/>
/// raw little-endian element bytes, follows it directly on the stream. The receiver checks every field against its
/// own schedule, so members that disagree on the generation, the call sequence or the buffer length fail loudly
/// instead of adding the wrong numbers.
/// </summary>
[MessagePackObject]
public sealed class FrameHeader
{
    /// <summary>Generation of the ring the frame belongs to.</summary>
    [Key(0)]
    public long Generation { get; set; }

    /// <summary>Sequence number of the all-reduce on this ring (0 for the first call after joining).</summary>
    [Key(1)]
    public long Step { get; set; }

    /// <summary>Index of the frame within the all-reduce, in the sender's order (0, 1, …).</summary>
    [Key(2)]
    public int Chunk { get; set; }

    /// <summary>Payload bytes that follow the header.</summary>
    [Key(3)]
    public int ByteLength { get; set; }

    /// <summary>Elements in the whole buffer being reduced, so a length mismatch is named as such.</summary>
    [Key(4)]
    public long TotalElements { get; set; }

    /// <summary>Bytes per element (4 for float, 8 for double).</summary>
    [Key(5)]
    public int ElementSize { get; set; }
}
