using Kto.Cluster.Exchange;

namespace Kto.Bench;

/// <summary>What <see cref="AllReduceBenchmark"/> measures; the defaults are the `kto bench allreduce` defaults.</summary>
public sealed record AllReduceBenchOptions
{
    /// <summary>
    /// 16 MiB: the float32 gradient of a 4-million-parameter model, the size of the small GPTs this project trains
    /// on CPU (a 4-layer, 256-wide GPT with a 4096-token vocabulary has about 4.3 M parameters).
    /// </summary>
    public const int DefaultMib = 16;

    /// <summary>
    /// 5 rounds, each measuring raw TCP and then the ring: the machine's cores are shared, so both sides are
    /// sampled alternately and each figure is a median over the rounds, which a burst of other work cannot move.
    /// </summary>
    public const int DefaultRounds = 5;

    /// <summary>10 timed all-reduces per round (50 in all at the default rounds, 160 MiB per direction per round).</summary>
    public const int DefaultIterations = 10;

    /// <summary>3 untimed all-reduces first: connection windows open up and the JIT has compiled the hot paths.</summary>
    public const int DefaultWarmup = 3;

    /// <summary>Buffer size in MiB.</summary>
    public int Mib { get; init; } = DefaultMib;

    /// <summary>Alternating rounds of raw and ring measurements.</summary>
    public int Rounds { get; init; } = DefaultRounds;

    /// <summary>Timed all-reduces per round.</summary>
    public int Iterations { get; init; } = DefaultIterations;

    /// <summary>Untimed all-reduces before them.</summary>
    public int Warmup { get; init; } = DefaultWarmup;

    /// <summary>Largest frame payload of the ring, in KiB (<see cref="RingOptions.MaxChunkBytes"/>).</summary>
    public int ChunkKib { get; init; } = RingDefaults.MaxChunkBytes >> 10;

    /// <summary>Socket send and receive buffers of the ring and of the raw connections, in KiB (0 = OS auto-tuning).</summary>
    public int SocketKib { get; init; } = RingDefaults.SocketBufferBytes >> 10;

    /// <summary>Bytes of the reduced buffer.</summary>
    public long BufferBytes => (long)Mib << 20;

    /// <summary>
    /// Bytes each raw measurement of a round moves per direction: what the ring moves per direction in the round's
    /// timed all-reduces (with two members each all-reduce sends and receives 2(N − 1)/N × the buffer = the buffer).
    /// </summary>
    public long RawBytes => BufferBytes * Iterations;

    /// <summary>The ring's options.</summary>
    public RingOptions Ring => new() { MaxChunkBytes = ChunkKib << 10, SocketBufferBytes = SocketKib << 10, Tls = Tls };

    /// <summary>
    /// A folder holding a cluster CA (<c>ca.crt</c>) and a host certificate <c>bench.pfx</c>: the ring runs over TLS with
    /// them (the raw TCP baseline stays plain, so <c>busbw_vs_raw</c> is TLS's cost against raw TCP); null for a plain ring.
    /// </summary>
    public string? TlsDir { get; init; }

    /// <summary>The ring's TLS made from <see cref="TlsDir"/> by the command (this library does not read certificates).</summary>
    public RingTls? Tls { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for settings that cannot run.</summary>
    public void Validate()
    {
        if (Mib < 1 || Mib > 1024) throw new ArgumentException("--mib must be between 1 and 1024");
        if (Rounds < 1) throw new ArgumentException("--rounds must be at least 1");
        if (Iterations < 1) throw new ArgumentException("--iterations must be at least 1");
        if (Warmup < 0) throw new ArgumentException("--warmup must not be negative");
        if (ChunkKib < 1) throw new ArgumentException("--chunk-kib must be at least 1");
        if (SocketKib < 0) throw new ArgumentException("--socket-kib must not be negative");
    }

    /// <summary>The options as peer command-line arguments (the inverse of the peer command's parsing).</summary>
    public IEnumerable<string> ToArguments() =>
    [
        "--mib", Mib.ToString(), "--rounds", Rounds.ToString(), "--iterations", Iterations.ToString(), "--warmup", Warmup.ToString(),
        "--chunk-kib", ChunkKib.ToString(), "--socket-kib", SocketKib.ToString(), .. TlsDir is null ? Array.Empty<string>() : ["--tls-dir", TlsDir],
    ];
}
