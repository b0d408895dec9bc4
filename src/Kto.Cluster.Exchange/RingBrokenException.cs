namespace Kto.Cluster.Exchange;

/// <summary>
/// A ring cannot complete its all-reduce or cannot be formed: a peer closed or reset its connection, stopped making
/// progress, refused the generation, or sent a frame that does not fit the schedule. The ring is unusable afterwards;
/// the members join a new generation.
/// </summary>
public sealed class RingBrokenException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RingBrokenException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public RingBrokenException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates an empty exception (serialization-compatible constructor).</summary>
    public RingBrokenException() { }

    /// <summary>Creates the exception naming the peer and generation involved.</summary>
    public RingBrokenException(string message, int? peerRank, long? generation, Exception? inner = null)
        : base(message, inner)
    {
        PeerRank = peerRank;
        Generation = generation;
    }

    /// <summary>Rank of the peer whose connection failed, when one is known.</summary>
    public int? PeerRank { get; }

    /// <summary>Generation of the ring that broke, when known.</summary>
    public long? Generation { get; }
}
