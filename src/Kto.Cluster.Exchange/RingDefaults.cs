namespace Kto.Cluster.Exchange;

/// <summary>The default of every <see cref="RingOptions"/> setting, with the reason for the number.</summary>
public static class RingDefaults
{
    /// <summary>
    /// 1 MiB: the write size at which raw loopback TCP reaches its plateau here (2.8–3.1 GB/s in the
    /// design's platform facts), while a 16 MiB gradient still splits into enough frames per ring segment for the
    /// chunk-level pipeline (a member forwards a chunk as soon as it has added it) to keep both directions busy.
    /// </summary>
    public const int MaxChunkBytes = 1 << 20;

    /// <summary>
    /// 30 s: far above the gap between replicas finishing the same backward pass (a KTO step of the reference
    /// model takes about a second per core), yet a stalled-but-connected peer still fails the step within the
    /// half minute. Dead peers are noticed sooner, through their closed connections.
    /// </summary>
    public static readonly TimeSpan ProgressTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// 4 MiB: the Linux default ceiling (<c>net.core.rmem_max</c>/<c>wmem_max</c> on these machines), four
    /// chunks in flight per direction, so a writer never waits on a reader that is busy adding the previous chunk.
    /// </summary>
    public const int SocketBufferBytes = 4 << 20;

    /// <summary>50 ms: a successor process that is still starting is retried twenty times a second.</summary>
    public static readonly TimeSpan ConnectRetryDelay = TimeSpan.FromMilliseconds(50);

    /// <summary>5 s: a peer sends its hello right after connecting; anything slower is not a ring member.</summary>
    public static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(5);
}
