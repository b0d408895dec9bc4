using System.Buffers.Binary;
using System.Net.Sockets;

namespace Kto.Bench;

/// <summary>
/// A TCP connection between the two processes of <c>kto bench allreduce</c>: the control connection (one-byte
/// signals and 64-bit numbers) or a raw data stream (bulk bytes, written <see cref="WriteBytes"/> at a time).
/// </summary>
internal sealed class BenchChannel : IDisposable
{
    /// <summary>1 MiB writes: the write size of the design's raw loopback figures (2.8–3.1 GB/s), and of the ring's default chunk.</summary>
    public const int WriteBytes = 1 << 20;

    /// <summary>Signal: go ahead with the next phase.</summary>
    public const byte Go = 1;

    /// <summary>Signal: done with the current phase.</summary>
    public const byte Done = 2;

    /// <summary>Signal: filled the buffer and about to all-reduce.</summary>
    public const byte Ready = 3;

    private readonly byte[] _small = new byte[sizeof(long)];

    /// <summary>Wraps <paramref name="socket"/> (owned).</summary>
    public BenchChannel(Socket socket) => Socket = socket;

    /// <summary>The connection.</summary>
    public Socket Socket { get; }

    /// <summary>The same socket options as the ring's links: no Nagle delay, the given buffers (0 = auto-tuning).</summary>
    public static void Configure(Socket socket, int bufferBytes)
    {
        socket.NoDelay = true;
        if (bufferBytes <= 0) return;
        socket.SendBufferSize = bufferBytes;
        socket.ReceiveBufferSize = bufferBytes;
    }

    /// <summary>Sends a one-byte signal.</summary>
    public async Task SignalAsync(byte signal, CancellationToken ct)
    {
        _small[0] = signal;
        await SendAllAsync(_small.AsMemory(0, 1), ct);
    }

    /// <summary>Waits for <paramref name="signal"/>; anything else is a protocol error.</summary>
    public async Task ExpectAsync(byte signal, CancellationToken ct)
    {
        await ReceiveAllAsync(_small.AsMemory(0, 1), ct);
        if (_small[0] != signal) throw new InvalidDataException($"expected signal {signal}, got {_small[0]}");
    }

    /// <summary>Sends a 64-bit number.</summary>
    public async Task SendNumberAsync(long value, CancellationToken ct)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_small, value);
        await SendAllAsync(_small, ct);
    }

    /// <summary>Receives a 64-bit number.</summary>
    public async Task<long> ReceiveNumberAsync(CancellationToken ct)
    {
        await ReceiveAllAsync(_small, ct);
        return BinaryPrimitives.ReadInt64LittleEndian(_small);
    }

    /// <summary>Writes <paramref name="total"/> bytes of <paramref name="block"/> repeated, one block per write.</summary>
    public async Task StreamOutAsync(long total, byte[] block, CancellationToken ct)
    {
        while (total > 0)
        {
            int n = (int)Math.Min(block.Length, total);
            await SendAllAsync(block.AsMemory(0, n), ct);
            total -= n;
        }
    }

    /// <summary>Reads and drops <paramref name="total"/> bytes, up to a block per read.</summary>
    public async Task StreamInAsync(long total, byte[] block, CancellationToken ct)
    {
        while (total > 0)
        {
            int n = await Socket.ReceiveAsync(block.AsMemory(0, (int)Math.Min(block.Length, total)), SocketFlags.None, ct);
            if (n == 0) throw new EndOfStreamException("the other process closed the connection");
            total -= n;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Socket.Dispose();

    private async Task SendAllAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        while (!bytes.IsEmpty) bytes = bytes[await Socket.SendAsync(bytes, SocketFlags.None, ct)..];
    }

    private async Task ReceiveAllAsync(Memory<byte> into, CancellationToken ct)
    {
        while (!into.IsEmpty)
        {
            int n = await Socket.ReceiveAsync(into, SocketFlags.None, ct);
            if (n == 0) throw new EndOfStreamException("the other process closed the connection");
            into = into[n..];
        }
    }
}
