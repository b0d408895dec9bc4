namespace Kto.Cluster.Exchange;

/// <summary>
/// Tuning of a <see cref="RingEndpoint"/> and the rings it joins. Every member of a ring must use the same
/// <see cref="MaxChunkBytes"/> (the receiver checks every frame's length against its own schedule); the other
/// settings are local. Defaults are the constants of <see cref="RingDefaults"/>.
/// </summary>
public sealed record RingOptions
{
    /// <summary>Largest payload of one frame, in bytes; rounded down to whole elements (at least one).</summary>
    public int MaxChunkBytes { get; init; } = RingDefaults.MaxChunkBytes;

    /// <summary>
    /// An all-reduce that moves no frame in either direction for this long throws <see cref="RingBrokenException"/>.
    /// It must cover the skew between members arriving at the same all-reduce (one finishing its backward pass
    /// later than another); a peer that dies is noticed at once through its closed connection, not through this.
    /// </summary>
    public TimeSpan ProgressTimeout { get; init; } = RingDefaults.ProgressTimeout;

    /// <summary>SO_SNDBUF and SO_RCVBUF of every ring connection, in bytes; 0 leaves the OS's auto-tuning on.</summary>
    public int SocketBufferBytes { get; init; } = RingDefaults.SocketBufferBytes;

    /// <summary>Pause between attempts to connect to a successor that does not listen yet.</summary>
    public TimeSpan ConnectRetryDelay { get; init; } = RingDefaults.ConnectRetryDelay;

    /// <summary>An accepted connection that does not introduce itself within this time is closed.</summary>
    public TimeSpan HelloTimeout { get; init; } = RingDefaults.HelloTimeout;

    /// <summary>
    /// TLS on every ring connection (mutual authentication, the options' validation callbacks decide about peers), or
    /// null for plain TCP. Every member of a ring must agree: a plain member cannot talk to a TLS one.
    /// </summary>
    public RingTls? Tls { get; init; }

    /// <summary>The defaults.</summary>
    public static RingOptions Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a setting cannot work.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxChunkBytes, sizeof(double), nameof(MaxChunkBytes));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ProgressTimeout, TimeSpan.Zero, nameof(ProgressTimeout));
        ArgumentOutOfRangeException.ThrowIfNegative(SocketBufferBytes, nameof(SocketBufferBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(ConnectRetryDelay.Ticks, nameof(ConnectRetryDelay));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HelloTimeout, TimeSpan.Zero, nameof(HelloTimeout));
    }
}

/// <summary>A ring's TLS: the options for connections this member accepts (from its predecessor) and makes (to its successor).</summary>
/// <param name="Server">For accepted connections: this member's certificate, a client certificate demanded and checked.</param>
/// <param name="Client">For outgoing connections: this member's certificate presented, the server's checked.</param>
public sealed record RingTls(System.Net.Security.SslServerAuthenticationOptions Server, System.Net.Security.SslClientAuthenticationOptions Client);
