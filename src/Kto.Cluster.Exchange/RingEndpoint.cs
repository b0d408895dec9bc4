using System.Net;
using System.Net.Sockets;
using Kto.Cluster.Exchange.Wire;

namespace Kto.Cluster.Exchange;

/// <summary>
/// A member of one ring: listens on a TCP port, connects to its successor, accepts its predecessor.
/// <para>
/// One endpoint lives as long as the trainer process and joins one generation after another. Joining generation g
/// supersedes (breaks) the ring of any older generation. A predecessor's connection is accepted only for the
/// generation being joined; connections announcing an older generation are refused and closed, connections
/// announcing a newer one wait (unanswered) until this endpoint joins it, so a member of generation g + 1 never
/// mixes with g.
/// </para>
/// </summary>
public sealed class RingEndpoint : IAsyncDisposable
{
    /// <summary>Pending connections the OS keeps before accepting: a ring needs one per generation.</summary>
    private const int ListenBacklog = 16;

    /// <summary>
    /// Connections announcing a newer generation kept waiting at most, so stray connects cannot pile up; a real
    /// ring parks one (its predecessor's) per future generation.
    /// </summary>
    private const int MaxParked = 16;

    private readonly Socket _listener;
    private readonly RingOptions _options;
    private readonly CancellationTokenSource _life = new();
    private readonly Task _acceptLoop;
    private readonly object _gate = new();
    private readonly Dictionary<(long Generation, int Rank), Incoming> _parked = [];
    private long _generation = long.MinValue;
    private JoinWaiter? _waiter;
    private Ring? _current;
    private bool _disposed;

    private RingEndpoint(Socket listener, RingOptions options)
    {
        _listener = listener;
        _options = options;
        LocalEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The address and port this member listens on (the actual port when 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>The newest generation this endpoint has joined or is joining (<see cref="long.MinValue"/> before the first).</summary>
    public long Generation
    {
        get
        {
            lock (_gate) return _generation;
        }
    }

    /// <summary>Starts listening on <paramref name="address"/>:<paramref name="port"/> (0 = any free port) with default options.</summary>
    public static Task<RingEndpoint> ListenAsync(IPAddress address, int port, CancellationToken ct) =>
        ListenAsync(address, port, RingOptions.Default, ct);

    /// <summary>Starts listening on <paramref name="address"/>:<paramref name="port"/> (0 = any free port).</summary>
    public static Task<RingEndpoint> ListenAsync(IPAddress address, int port, RingOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ct.ThrowIfCancellationRequested();
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // Before listen(), so accepted connections inherit the buffers and negotiate a window scale to match.
            RingLink.Configure(socket, options.SocketBufferBytes);
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(ListenBacklog);
            return Task.FromResult(new RingEndpoint(socket, options));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds the ring for one generation: <paramref name="members"/> is the ordered list of all members' endpoints
    /// (this one included, as <see cref="LocalEndPoint"/>), <paramref name="generation"/> a number all members agree on
    /// and newer than any this endpoint joined before. Returns once the link to the successor is accepted and the
    /// predecessor's link has arrived; a ring of one member has no links.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="LocalEndPoint"/> is not in <paramref name="members"/>, or a member repeats.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="generation"/> is not newer than <see cref="Generation"/>.</exception>
    /// <exception cref="RingBrokenException">A neighbour refused the generation or membership, or did not show up within <paramref name="timeout"/>.</exception>
    public Task<Ring> JoinAsync(IReadOnlyList<IPEndPoint> members, long generation, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(members);
        int rank = -1;
        for (int i = 0; i < members.Count; i++)
            if (LocalEndPoint.Equals(members[i])) rank = i;
        if (rank < 0) throw new ArgumentException($"this endpoint ({LocalEndPoint}) is not among the members; pass its rank explicitly", nameof(members));
        return JoinAsync(members, rank, generation, timeout, ct);
    }

    /// <summary>
    /// As <see cref="JoinAsync(IReadOnlyList{IPEndPoint}, long, TimeSpan, CancellationToken)"/>, with this member's
    /// rank given (for an endpoint bound to a wildcard address, whose <see cref="LocalEndPoint"/> is not what peers dial).
    /// </summary>
    public async Task<Ring> JoinAsync(IReadOnlyList<IPEndPoint> members, int rank, long generation, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count == 0) throw new ArgumentException("a ring needs at least one member", nameof(members));
        if (members.Distinct().Count() != members.Count) throw new ArgumentException("a member appears twice", nameof(members));
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, members.Count);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        ct.ThrowIfCancellationRequested();

        int size = members.Count;
        int predecessor = (rank + size - 1) % size;
        Incoming? parked = null;
        JoinWaiter? waiter = null;
        Ring? superseded;
        List<Incoming> stale, strangers;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (generation <= _generation)
                throw new InvalidOperationException($"generation {generation} is not newer than generation {_generation}, which this endpoint already joined");
            _generation = generation;
            superseded = _current;
            _current = null;
            _waiter?.Tcs.TrySetException(new RingBrokenException($"superseded by generation {generation} before the ring formed", null, _waiter.Generation));
            _waiter = null;
            stale = TakeParkedOlderThan(generation);
            if (size > 1 && !_parked.Remove((generation, predecessor), out parked))
                _waiter = waiter = new JoinWaiter(generation, predecessor);
            strangers = TakeParked(k => k.Generation == generation);
        }
        superseded?.Break($"superseded by generation {generation}");
        foreach (Incoming s in stale) _ = RefuseAsync(s.Link, $"generation {s.Hello.Generation} is older than {generation}", generation);
        foreach (Incoming s in strangers) _ = RefuseAsync(s.Link, $"rank {s.Hello.Rank} is not the predecessor (rank {predecessor}) in generation {generation}", generation);

        Ring ring = size == 1
            ? new Ring(rank, size, generation, null, null, _options)
            : await ConnectRingAsync(members, rank, generation, timeout, parked, waiter, ct);
        lock (_gate)
        {
            if (_generation == generation && !_disposed)
            {
                _current = ring;
                return ring;
            }
        }
        ring.Break("superseded while forming");
        throw new RingBrokenException($"generation {generation} was superseded or the endpoint closed while the ring formed", null, generation);
    }

    /// <summary>Connects to the successor and takes the predecessor's link, concurrently; the first failure stops both.</summary>
    private async Task<Ring> ConnectRingAsync(IReadOnlyList<IPEndPoint> members, int rank, long generation, TimeSpan timeout, Incoming? parked, JoinWaiter? waiter, CancellationToken ct)
    {
        int size = members.Count;
        int predecessor = (rank + size - 1) % size;
        int successor = (rank + 1) % size;
        var hello = new Hello
        {
            Protocol = WireFormat.ProtocolVersion, Generation = generation, Rank = rank, Size = size,
            MembershipDigest = MembershipDigest.Of(members),
        };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct, _life.Token);
        deadline.CancelAfter(timeout);
        Task<RingLink> connect = ConnectSuccessorAsync(members[successor], successor, hello, deadline.Token);
        Task<RingLink> accept = AcceptPredecessorAsync(parked, waiter, hello, predecessor, deadline.Token);
        Task first = await Task.WhenAny(connect, accept);
        if (!first.IsCompletedSuccessfully) await deadline.CancelAsync();
        try
        {
            await Task.WhenAll(connect, accept);
            return new Ring(rank, size, generation, connect.Result, accept.Result, _options);
        }
        catch
        {
            await deadline.CancelAsync();
            if (connect.IsCompletedSuccessfully) connect.Result.Dispose();
            if (accept.IsCompletedSuccessfully) accept.Result.Dispose();
            if (waiter is not null) AbandonWaiter(waiter);
            ct.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_life.IsCancellationRequested, this);
            // The first task to fail names the cause; the other one only failed because it was stopped.
            Task failed = !first.IsCompletedSuccessfully ? first : ReferenceEquals(first, connect) ? accept : connect;
            Exception cause = failed.Exception?.GetBaseException() ?? new OperationCanceledException();
            if (cause is RingBrokenException) throw cause;
            bool fromPredecessor = ReferenceEquals(failed, accept);
            int peer = fromPredecessor ? predecessor : successor;
            string what = cause is OperationCanceledException
                ? fromPredecessor ? $"rank {predecessor} did not connect" : $"rank {successor} at {members[successor]} did not accept"
                : $"the link with rank {peer} failed: {cause.Message}";
            throw new RingBrokenException($"rank {rank} could not join generation {generation} within {timeout.TotalSeconds:0.#} s: {what}", peer, generation, cause);
        }
    }

    /// <summary>Stops listening, refuses waiting connections and breaks the current ring.</summary>
    public async ValueTask DisposeAsync()
    {
        Ring? current;
        List<Incoming> parked;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            current = _current;
            _current = null;
            _waiter?.Tcs.TrySetException(new ObjectDisposedException(nameof(RingEndpoint)));
            _waiter = null;
            parked = TakeParkedOlderThan(long.MaxValue);
        }
        await _life.CancelAsync();
        _listener.Dispose();
        foreach (Incoming p in parked) p.Link.Dispose();
        try
        {
            await _acceptLoop;
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        if (current is not null) await current.DisposeAsync();
        // _life is not disposed: introductions still finishing may read its token; it holds no timer.
    }

    private async Task AcceptLoopAsync()
    {
        while (!_life.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_life.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                if (_life.IsCancellationRequested) return;
                continue;
            }
            _ = IntroduceAsync(socket);
        }
    }

    /// <summary>Reads the newcomer's hello and hands the connection to the join it belongs to, parks or refuses it.</summary>
    private async Task IntroduceAsync(Socket socket)
    {
        var link = new RingLink(socket);
        Hello hello;
        try
        {
            socket.NoDelay = true;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_life.Token);
            timeout.CancelAfter(_options.HelloTimeout);
            // The handshake and the hello share the time-out: a stranger that never finishes either holds nothing for long.
            if (_options.Tls is { } tls) await link.SecureAsServerAsync(tls.Server, timeout.Token);
            hello = await link.ReceiveMessageAsync<Hello>(timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or EndOfStreamException or InvalidDataException
            or System.Security.Authentication.AuthenticationException or IOException)
        {
            link.Dispose();
            return;
        }
        string? refusal;
        long current;
        lock (_gate)
        {
            current = _generation;
            refusal = Admit(new Incoming(link, hello));
        }
        if (refusal is not null) await RefuseAsync(link, refusal, current);
    }

    /// <summary>Decides about a newcomer (under the lock); returns why it is refused, or null when it was taken or parked.</summary>
    private string? Admit(Incoming incoming)
    {
        Hello hello = incoming.Hello;
        if (_disposed) return "the endpoint is closing";
        if (hello.Protocol != WireFormat.ProtocolVersion) return $"protocol {hello.Protocol} is not {WireFormat.ProtocolVersion}";
        if (hello.Generation < _generation) return $"generation {hello.Generation} is older than generation {_generation}";
        if (hello.Generation == _generation)
        {
            if (_waiter is not { } w || w.Generation != hello.Generation) return $"generation {hello.Generation} already has its predecessor";
            if (hello.Rank != w.PredecessorRank) return $"rank {hello.Rank} is not the predecessor (rank {w.PredecessorRank}) in generation {hello.Generation}";
            _waiter = null;
            if (!w.Tcs.TrySetResult(incoming)) return "the join gave up";
            return null;
        }
        if (_parked.Remove((hello.Generation, hello.Rank), out Incoming? replaced)) replaced.Link.Dispose();
        if (_parked.Count >= MaxParked) return $"too many connections wait for newer generations (at most {MaxParked})";
        _parked[(hello.Generation, hello.Rank)] = incoming;
        return null;
    }

    private List<Incoming> TakeParkedOlderThan(long generation) => TakeParked(k => k.Generation < generation);

    /// <summary>Removes (under the lock) and returns the parked connections whose key matches.</summary>
    private List<Incoming> TakeParked(Func<(long Generation, int Rank), bool> match)
    {
        var taken = new List<Incoming>();
        foreach (var key in _parked.Keys.Where(match).ToList())
        {
            taken.Add(_parked[key]);
            _parked.Remove(key);
        }
        return taken;
    }

    /// <summary>Stops waiting for a predecessor; a link that arrived meanwhile is closed.</summary>
    private void AbandonWaiter(JoinWaiter waiter)
    {
        lock (_gate)
        {
            if (ReferenceEquals(_waiter, waiter)) _waiter = null;
            waiter.Tcs.TrySetCanceled();
        }
        if (waiter.Tcs.Task.IsCompletedSuccessfully) waiter.Tcs.Task.Result.Link.Dispose();
    }

    private async Task<RingLink> ConnectSuccessorAsync(IPEndPoint endpoint, int successorRank, Hello hello, CancellationToken ct)
    {
        while (true)
        {
            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            RingLink.Configure(socket, _options.SocketBufferBytes);
            try
            {
                await socket.ConnectAsync(endpoint, ct);
            }
            catch (SocketException) when (!ct.IsCancellationRequested)
            {
                // Not listening yet (a process still starting): try again shortly.
                socket.Dispose();
                await Task.Delay(_options.ConnectRetryDelay, ct);
                continue;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            var link = new RingLink(socket);
            HelloReply reply;
            try
            {
                if (_options.Tls is { } tls) await link.SecureAsClientAsync(tls.Client, ct);
            }
            catch (IOException) when (!ct.IsCancellationRequested)
            {
                // Closed during the handshake (the successor's endpoint restarting): try again.
                link.Dispose();
                await Task.Delay(_options.ConnectRetryDelay, ct);
                continue;
            }
            catch (System.Security.Authentication.AuthenticationException e) when (!ct.IsCancellationRequested)
            {
                link.Dispose();
                throw new RingBrokenException($"the TLS handshake with rank {successorRank} at {endpoint} failed: {e.GetBaseException().Message}", successorRank, hello.Generation, e);
            }
            try
            {
                await link.SendMessageAsync(hello, ct);
                reply = await link.ReceiveMessageAsync<HelloReply>(ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is SocketException or IOException)
            {
                // Closed before answering (the successor's endpoint restarting): try again.
                link.Dispose();
                await Task.Delay(_options.ConnectRetryDelay, ct);
                continue;
            }
            catch
            {
                link.Dispose();
                throw;
            }
            if (reply.Accepted) return link;
            link.Dispose();
            throw new RingBrokenException(
                $"rank {successorRank} at {endpoint} refused rank {hello.Rank} for generation {hello.Generation}: {reply.Reason}",
                successorRank, hello.Generation);
        }
    }

    private async Task<RingLink> AcceptPredecessorAsync(Incoming? parked, JoinWaiter? waiter, Hello mine, int predecessorRank, CancellationToken ct)
    {
        Incoming incoming = parked ?? await waiter!.Tcs.Task.WaitAsync(ct);
        Hello theirs = incoming.Hello;
        if (theirs.Size != mine.Size || theirs.MembershipDigest != mine.MembershipDigest)
        {
            await RefuseAsync(incoming.Link, "the member lists differ", mine.Generation);
            throw new RingBrokenException(
                $"rank {predecessorRank} joins generation {mine.Generation} with a different member list ({theirs.Size} members)",
                predecessorRank, mine.Generation);
        }
        try
        {
            await incoming.Link.SendMessageAsync(new HelloReply { Accepted = true, Generation = mine.Generation }, ct);
        }
        catch
        {
            incoming.Link.Dispose();
            throw;
        }
        return incoming.Link;
    }

    private async Task RefuseAsync(RingLink link, string reason, long generation)
    {
        try
        {
            using var timeout = new CancellationTokenSource(_options.HelloTimeout);
            string text = reason.Length <= WireFormat.MaxReasonChars ? reason : reason[..WireFormat.MaxReasonChars];
            await link.SendMessageAsync(new HelloReply { Accepted = false, Reason = text, Generation = generation }, timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The refused side learns it from the closed connection instead.
        }
        finally
        {
            link.Dispose();
        }
    }

    private sealed record Incoming(RingLink Link, Hello Hello);

    private sealed class JoinWaiter(long generation, int predecessorRank)
    {
        public long Generation { get; } = generation;

        public int PredecessorRank { get; } = predecessorRank;

        public TaskCompletionSource<Incoming> Tcs { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
