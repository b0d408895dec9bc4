using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using MessagePack;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>
/// One TCP connection of a ring with its framing: length-prefixed MessagePack messages and raw payloads, over the
/// socket itself or over TLS (<see cref="SecureAsServerAsync"/>, <see cref="SecureAsClientAsync"/>). During an
/// all-reduce one task writes to it and (on the other connection) one task reads, never two of the same kind.
/// </summary>
internal sealed class RingLink : IDisposable
{
    private readonly Socket _socket;
    private SslStream? _tls;
    // Small and owned for the connection's life (not pooled): a concurrent close must never hand them to someone else.
    private readonly byte[] _sendBuffer = new byte[WireFormat.PrefixBytes + WireFormat.MaxMessageBytes];
    private readonly byte[] _receiveBuffer = new byte[WireFormat.PrefixBytes + WireFormat.MaxMessageBytes];
    private int _disposed;

    /// <summary>Wraps <paramref name="socket"/> (owned from now on).</summary>
    public RingLink(Socket socket) => _socket = socket;

    /// <summary>Whether the connection is encrypted and its peer authenticated.</summary>
    public bool Secure => _tls is not null;

    /// <summary>TLS handshake as the accepting side; the options' validation callback decides about the peer's certificate.</summary>
    /// <exception cref="AuthenticationException">The handshake failed (a refused certificate, none, or not TLS at all).</exception>
    public Task SecureAsServerAsync(SslServerAuthenticationOptions options, CancellationToken ct) => SecureAsync(tls => tls.AuthenticateAsServerAsync(options, ct));

    /// <summary>TLS handshake as the connecting side.</summary>
    /// <exception cref="AuthenticationException">The handshake failed (the server's certificate was refused, or it refused ours).</exception>
    public Task SecureAsClientAsync(SslClientAuthenticationOptions options, CancellationToken ct) => SecureAsync(tls => tls.AuthenticateAsClientAsync(options, ct));

    /// <summary>Runs <paramref name="handshake"/> on a TLS stream over the socket; from then on every byte goes through it.</summary>
    private async Task SecureAsync(Func<SslStream, Task> handshake)
    {
        var tls = new SslStream(new NetworkStream(_socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            await handshake(tls);
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
        _tls = tls;
    }

    /// <summary>No Nagle delay; the given buffer sizes (0 = the OS's auto-tuning).</summary>
    public static void Configure(Socket socket, int bufferBytes)
    {
        socket.NoDelay = true;
        if (bufferBytes > 0)
        {
            socket.SendBufferSize = bufferBytes;
            socket.ReceiveBufferSize = bufferBytes;
        }
    }

    /// <summary>Sends one length-prefixed MessagePack message.</summary>
    public async ValueTask SendMessageAsync<T>(T message, CancellationToken ct)
    {
        var writer = new FixedBufferWriter(_sendBuffer, WireFormat.PrefixBytes, WireFormat.MaxMessageBytes);
        MessagePackSerializer.Serialize(writer, message, WireFormat.Options, ct);
        BinaryPrimitives.WriteUInt16LittleEndian(_sendBuffer, (ushort)writer.Written);
        await SendAsync(_sendBuffer.AsMemory(0, WireFormat.PrefixBytes + writer.Written), ct);
    }

    /// <summary>Receives one length-prefixed MessagePack message.</summary>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    /// <exception cref="InvalidDataException">The bytes are not a message of this protocol.</exception>
    public async ValueTask<T> ReceiveMessageAsync<T>(CancellationToken ct)
    {
        await ReceiveExactlyAsync(_receiveBuffer.AsMemory(0, WireFormat.PrefixBytes), ct);
        int length = BinaryPrimitives.ReadUInt16LittleEndian(_receiveBuffer);
        if (length is 0 or > WireFormat.MaxMessageBytes)
            throw new InvalidDataException($"message of {length} bytes announced (at most {WireFormat.MaxMessageBytes})");
        await ReceiveExactlyAsync(_receiveBuffer.AsMemory(0, length), ct);
        try
        {
            return MessagePackSerializer.Deserialize<T>(_receiveBuffer.AsMemory(0, length), WireFormat.Options, ct);
        }
        catch (MessagePackSerializationException e)
        {
            throw new InvalidDataException($"not a {typeof(T).Name}: {e.Message}", e);
        }
    }

    /// <summary>Sends all of <paramref name="bytes"/>.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        if (_tls is not null)
        {
            await _tls.WriteAsync(bytes, ct);
            Interlocked.Add(ref _bytesSent, bytes.Length);
            return;
        }
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None, ct);
            Interlocked.Add(ref _bytesSent, sent);
            bytes = bytes[sent..];
        }
    }

    private long _bytesSent;

    /// <summary>Bytes this side has written to the connection (frame headers and payloads), since it opened.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Receives whatever arrives next (at most <paramref name="into"/>'s length); 0 when the peer closed.</summary>
    public ValueTask<int> ReceiveSomeAsync(Memory<byte> into, CancellationToken ct) =>
        _tls is not null ? _tls.ReadAsync(into, ct) : _socket.ReceiveAsync(into, SocketFlags.None, ct);

    /// <summary>Fills <paramref name="into"/> from the stream.</summary>
    /// <exception cref="EndOfStreamException">The peer closed the connection first.</exception>
    public async ValueTask ReceiveExactlyAsync(Memory<byte> into, CancellationToken ct)
    {
        while (!into.IsEmpty)
        {
            int read = await ReceiveSomeAsync(into, ct);
            if (read == 0) throw new EndOfStreamException("the peer closed the connection");
            into = into[read..];
        }
    }

    /// <summary>Closes the connection (idempotent, thread-safe); pending reads and writes fail.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer: closing is all that is left.
        }
        catch (ObjectDisposedException)
        {
        }
        _tls?.Dispose();
        _socket.Dispose();
    }
}
