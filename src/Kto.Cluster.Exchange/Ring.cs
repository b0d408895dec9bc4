using System.Net.Sockets;
using System.Numerics;
using Kto.Cluster.Exchange.Reduction;
using Kto.Cluster.Exchange.Wire;

namespace Kto.Cluster.Exchange;

/// <summary>
/// One generation of a ring of trainer processes, made by <see cref="RingEndpoint.JoinAsync(IReadOnlyList{System.Net.IPEndPoint}, long, TimeSpan, CancellationToken)"/>:
/// a TCP connection to the successor (this member only writes to it) and one from the predecessor (only read).
/// Every member must make the same sequence of all-reduce calls with buffers of the same length; frames carry the
/// generation and the call's sequence number, and a mismatch breaks the ring rather than mixing numbers.
/// A ring that failed once stays broken; the members join a new generation.
/// </summary>
public sealed class Ring : IAsyncDisposable
{
    private readonly RingLink? _outgoing;
    private readonly RingLink? _incoming;
    private readonly RingOptions _options;
    private readonly CancellationTokenSource _broken = new();
    private string? _brokenReason;
    private int? _brokenPeer;
    private long _nextStep;
    private int _busy;
    private Task _running = Task.CompletedTask;

    internal Ring(int rank, int size, long generation, RingLink? outgoing, RingLink? incoming, RingOptions options)
    {
        Rank = rank;
        Size = size;
        Generation = generation;
        _outgoing = outgoing;
        _incoming = incoming;
        _options = options;
        if (outgoing is not null) _ = WatchSuccessorAsync(outgoing);
    }

    /// <summary>This member's position in the member list (0-based).</summary>
    public int Rank { get; }

    /// <summary>Members in the ring.</summary>
    public int Size { get; }

    /// <summary>The generation all members agreed on.</summary>
    public long Generation { get; }

    /// <summary>All-reduce calls started on this ring so far.</summary>
    public long Steps => Interlocked.Read(ref _nextStep);

    /// <summary>True once the ring failed, was disposed or was superseded by a newer generation.</summary>
    public bool IsBroken => _brokenReason is not null;

    /// <summary>Bytes this member has written to its ring connections (headers and payloads) since the ring formed.</summary>
    public long BytesSent => (_outgoing?.BytesSent ?? 0) + (_incoming?.BytesSent ?? 0);

    /// <summary>
    /// In-place sum all-reduce of <paramref name="data"/> (same length on every member): reduce-scatter then
    /// all-gather, in frames of at most <see cref="RingOptions.MaxChunkBytes"/>, so each member sends and receives
    /// 2(N − 1)/N of the buffer. Afterwards every member holds bit-identical values: each element is summed once,
    /// in ring order starting at the rank that owns its segment, and the finished sum is copied, never re-added.
    /// </summary>
    /// <exception cref="RingBrokenException">A peer closed or reset its connection, made no progress within
    /// <see cref="RingOptions.ProgressTimeout"/>, or sent a frame that does not fit; or the ring was disposed or
    /// superseded. The ring is broken afterwards and <paramref name="data"/> holds partial sums.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled mid-way; the ring is broken.</exception>
    public Task AllReduceSumAsync(float[] data, CancellationToken ct) => RunAsync(data, ct);

    /// <summary>The same for doubles: small scalars such as the KL sum and count of a step.</summary>
    /// <exception cref="RingBrokenException">As for the float overload.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled mid-way; the ring is broken.</exception>
    public Task AllReduceSumAsync(double[] data, CancellationToken ct) => RunAsync(data, ct);

    /// <summary>Closes the ring's connections; an all-reduce in flight fails with <see cref="RingBrokenException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        Break("the ring was disposed");
        try
        {
            await _running;
        }
        catch (Exception e) when (e is RingBrokenException or OperationCanceledException)
        {
            // Its caller sees the failure; disposing only waits for the sockets to let go of the buffer.
        }
    }

    /// <summary>Marks the ring broken for <paramref name="reason"/> (first reason wins) and closes its connections.</summary>
    /// <param name="reason">What happened, for the exception of the all-reduce in flight and of later calls.</param>
    /// <param name="peerRank">The neighbour whose connection failed, when that is the reason.</param>
    internal void Break(string reason, int? peerRank = null)
    {
        if (Interlocked.CompareExchange(ref _brokenReason, reason, null) is null)
        {
            _brokenPeer = peerRank;
            try
            {
                _broken.Cancel();
            }
            catch (AggregateException)
            {
                // A registration threw; the ring is broken regardless.
            }
        }
        CloseLinks();
    }

    /// <summary>
    /// The successor never writes on the link this member sends on, so a read on it completes only when the
    /// successor closes or resets the connection. Watching it notices a dead successor even while this member's
    /// writer is idle (waiting for its predecessor), and breaks the ring at once, which its own predecessor notices
    /// in turn: a death travels round the ring instead of leaving members to wait for the progress timeout.
    /// </summary>
    private async Task WatchSuccessorAsync(RingLink outgoing)
    {
        int successor = (Rank + 1) % Size;
        var probe = new byte[1];
        string reason;
        try
        {
            int read = await outgoing.ReceiveSomeAsync(probe, _broken.Token);
            reason = read == 0 ? $"rank {successor} closed its connection" : $"rank {successor} wrote on a link that carries data the other way";
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException
            || e is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
        {
            return; // This side closed the link (broken, disposed, or an all-reduce that failed and says why itself).
        }
        catch (SocketException e)
        {
            reason = $"the connection to rank {successor} failed ({e.SocketErrorCode})";
        }
        catch (IOException e) // over TLS, the stream wraps what the socket reports
        {
            if (_broken.IsCancellationRequested || e.InnerException is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted }) return;
            reason = $"the connection to rank {successor} failed ({e.InnerException?.Message ?? e.Message})";
        }
        Break(reason, successor);
    }

    private void CloseLinks()
    {
        _outgoing?.Dispose();
        _incoming?.Dispose();
    }

    private Task RunAsync<T>(T[] data, CancellationToken ct) where T : unmanaged, IAdditionOperators<T, T, T>
    {
        ArgumentNullException.ThrowIfNull(data);
        ct.ThrowIfCancellationRequested();
        if (_brokenReason is { } reason) throw new RingBrokenException($"ring of generation {Generation} is broken: {reason}", null, Generation);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("an all-reduce is already running on this ring; calls must be sequential");
        long step = Interlocked.Increment(ref _nextStep) - 1;
        if (Size == 1 || data.Length == 0)
        {
            Volatile.Write(ref _busy, 0);
            return Task.CompletedTask;
        }
        Task run = RunCoreAsync(data, step, ct);
        _running = run;
        return run;
    }

    private async Task RunCoreAsync<T>(T[] data, long step, CancellationToken ct) where T : unmanaged, IAdditionOperators<T, T, T>
    {
        try
        {
            var run = new AllReduceRun<T>(_outgoing!, _incoming!, Rank, Size, Generation, step, _options, CloseLinks);
            await run.RunAsync(data, ct, _broken.Token, () => (_brokenReason ?? "broken", _brokenPeer));
        }
        catch (RingBrokenException e)
        {
            Break(e.Message);
            throw;
        }
        catch (OperationCanceledException)
        {
            Break($"all-reduce #{step} was cancelled mid-way");
            throw;
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }
}
