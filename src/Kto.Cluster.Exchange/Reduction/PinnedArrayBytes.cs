using System.Buffers;
using System.Runtime.InteropServices;

namespace Kto.Cluster.Exchange.Reduction;

/// <summary>
/// The bytes of a caller's <typeparamref name="T"/>[] as <see cref="Memory{T}"/> of bytes, pinned for the life of
/// this object, so sockets send from and receive into the array itself with no staging copy.
/// </summary>
internal sealed unsafe class PinnedArrayBytes<T> : MemoryManager<byte> where T : unmanaged
{
    private GCHandle _handle;
    private readonly byte* _pointer;
    private readonly int _length;

    /// <summary>Pins <paramref name="array"/> until <see cref="IDisposable.Dispose"/>.</summary>
    public PinnedArrayBytes(T[] array)
    {
        long bytes = (long)array.Length * sizeof(T);
        if (bytes > int.MaxValue) throw new ArgumentException($"buffer of {bytes} bytes is larger than 2 GiB", nameof(array));
        _handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        _pointer = (byte*)_handle.AddrOfPinnedObject();
        _length = (int)bytes;
    }

    /// <inheritdoc />
    public override Span<byte> GetSpan() => new(_pointer, _length);

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_length, nameof(elementIndex));
        return new MemoryHandle(_pointer + elementIndex);
    }

    /// <inheritdoc />
    public override void Unpin()
    {
        // Pinned once for the whole operation; nothing to release per I/O call.
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_handle.IsAllocated) _handle.Free();
    }
}
