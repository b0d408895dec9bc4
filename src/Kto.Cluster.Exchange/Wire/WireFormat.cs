using MessagePack;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>
/// The framing of ring connections: every MessagePack message is preceded by its length as a little-endian
/// unsigned 16-bit number; a <see cref="FrameHeader"/> is followed by its raw payload bytes.
/// </summary>
internal static class WireFormat
{
    /// <summary>Version carried in <see cref="Hello.Protocol"/>; bump it when a contract or the framing changes.</summary>
    public const int ProtocolVersion = 1;

    /// <summary>Bytes of the length prefix in front of every MessagePack message.</summary>
    public const int PrefixBytes = sizeof(ushort);

    /// <summary>
    /// 512 bytes: the largest MessagePack message accepted. Headers take about 30 bytes; a refusal's reason is the
    /// only variable part and is cut to fit. A peer announcing more is not speaking this protocol.
    /// </summary>
    public const int MaxMessageBytes = 512;

    /// <summary>Longest refusal reason sent, in characters, so a <see cref="HelloReply"/> stays within <see cref="MaxMessageBytes"/>.</summary>
    public const int MaxReasonChars = 200;

    /// <summary>
    /// Attribute contracts only (the standard resolver, never contractless or typeless), with the untrusted-data
    /// guards on: every byte on these sockets comes from the network.
    /// </summary>
    public static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);
}
