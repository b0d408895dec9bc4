using System.Buffers;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>An <see cref="IBufferWriter{T}"/> over a fixed slice of a caller's array; it never grows.</summary>
internal sealed class FixedBufferWriter : IBufferWriter<byte>
{
    private readonly byte[] _buffer;
    private readonly int _start;
    private readonly int _end;
    private int _position;

    /// <summary>Writes into <paramref name="buffer"/>[<paramref name="start"/> .. <paramref name="start"/> + <paramref name="length"/>).</summary>
    public FixedBufferWriter(byte[] buffer, int start, int length)
    {
        _buffer = buffer;
        _start = start;
        _end = start + length;
        _position = start;
    }

    /// <summary>Bytes written so far.</summary>
    public int Written => _position - _start;

    /// <inheritdoc />
    public void Advance(int count) => _position += count;

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0) => _buffer.AsMemory(_position, Room(sizeHint));

    /// <inheritdoc />
    public Span<byte> GetSpan(int sizeHint = 0) => _buffer.AsSpan(_position, Room(sizeHint));

    private int Room(int sizeHint)
    {
        int room = _end - _position;
        if (room < Math.Max(sizeHint, 1)) throw new InvalidOperationException($"message larger than {_end - _start} bytes");
        return room;
    }
}
