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
