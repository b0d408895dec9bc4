using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kto.Cluster.Exchange.Wire;

namespace Kto.Cluster.Exchange.Reduction;

/// <summary>
/// One in-place ring all-reduce (sum) on one member: a writer task sends the <see cref="RingSchedule.Sends"/> to the
/// successor while a reader task takes the <see cref="RingSchedule.Receives"/> from the predecessor, full-duplex.
/// The writer forwards a frame of step s ≥ 1 only after the reader has finished the matching frame of step s − 1.
/// The first failure of either side stops both and closes the ring's connections, which breaks the neighbours'
/// all-reduce in turn, so the failure travels round the ring within moments.
/// </summary>
internal sealed class AllReduceRun<T> where T : unmanaged, IAdditionOperators<T, T, T>
{
    private readonly RingLink _outgoing;
    private readonly RingLink _incoming;
    private readonly int _rank;
    private readonly int _size;
    private readonly long _generation;
    private readonly long _step;
    private readonly RingOptions _options;
    private readonly Action _closeLinks;
    /// <summary>Cancelled when no chunk moved for <see cref="RingOptions.ProgressTimeout"/> (re-armed on every chunk).</summary>
    private CancellationTokenSource? _progress;
    private Exception? _failure;
    private int _failedPeer;
    private volatile bool _receivesDone;

    /// <summary>Prepares all-reduce number <paramref name="step"/> of a ring.</summary>
    /// <param name="outgoing">The link to the successor (written only).</param>
    /// <param name="incoming">The link from the predecessor (read only).</param>
    /// <param name="rank">This member's rank.</param>
    /// <param name="size">Members in the ring.</param>
    /// <param name="generation">The ring's generation, stamped on and checked against every frame.</param>
    /// <param name="step">Sequence number of this all-reduce on the ring.</param>
    /// <param name="options">Chunk size and progress timeout.</param>
    /// <param name="closeLinks">Closes both connections; called on the first failure.</param>
    public AllReduceRun(RingLink outgoing, RingLink incoming, int rank, int size, long generation, long step, RingOptions options, Action closeLinks)
    {
        _outgoing = outgoing;
        _incoming = incoming;
        _rank = rank;
        _size = size;
        _generation = generation;
        _step = step;
        _options = options;
        _closeLinks = closeLinks;
    }

    private int Successor => (_rank + 1) % _size;

    private int Predecessor => (_rank + _size - 1) % _size;

    /// <summary>Sums <paramref name="data"/> across the ring in place.</summary>
    /// <param name="data">This member's values; the sums afterwards.</param>
    /// <param name="ct">The caller's cancellation.</param>
    /// <param name="broken">Cancelled when the ring is broken from outside (disposed, superseded).</param>
    /// <param name="brokenReason">Why it was broken from outside, and the neighbour involved if one was.</param>
    public async Task RunAsync(T[] data, CancellationToken ct, CancellationToken broken, Func<(string Reason, int? Peer)> brokenReason)
    {
        int elementSize = Unsafe.SizeOf<T>();
        int perChunk = Math.Max(1, _options.MaxChunkBytes / elementSize);
        RingSchedule schedule = RingSchedule.Create(_rank, _size, data.Length, perChunk);
        using var progress = new CancellationTokenSource(_options.ProgressTimeout);
        _progress = progress;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct, broken, progress.Token);
        using var forwardable = new SemaphoreSlim(0);
        using var bytes = new PinnedArrayBytes<T>(data);
        // A frame never exceeds a chunk or a segment (⌈L/N⌉ elements), whichever is smaller.
        long largestSegment = (data.Length + _size - 1) / _size;
        byte[] scratch = ArrayPool<byte>.Shared.Rent((int)Math.Min(perChunk, Math.Max(1, largestSegment)) * elementSize);
        try
        {
            Task send = GuardAsync(SendAllAsync(schedule, data.Length, bytes.Memory, forwardable, cts), Successor, cts);
            Task receive = GuardAsync(ReceiveAllAsync(schedule, data, bytes.Memory, scratch, forwardable, cts), Predecessor, cts);
            await Task.WhenAll(send, receive);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }

        if (_failure is { } failure)
            throw new RingBrokenException(
                $"all-reduce #{_step} of generation {_generation} failed at rank {_rank}: the link {(_failedPeer == Successor ? "to" : "from")} rank {_failedPeer} {Describe(failure)}",
                _failedPeer, _generation, failure);
        if (!cts.IsCancellationRequested) return;
        ct.ThrowIfCancellationRequested();
        // A stall ends the links, which the ring's watcher may report as a break first: the stall is the cause.
        if (broken.IsCancellationRequested && !progress.IsCancellationRequested)
        {
            var (reason, peer) = brokenReason();
            throw new RingBrokenException($"all-reduce #{_step} of generation {_generation} stopped at rank {_rank}: {reason}", peer, _generation);
        }
        int stalled = _receivesDone ? Successor : Predecessor;
        throw new RingBrokenException(
            $"all-reduce #{_step} of generation {_generation} made no progress for {_options.ProgressTimeout.TotalSeconds:0.#} s at rank {_rank} (waiting on rank {stalled})",
            stalled, _generation);
    }

    private async Task GuardAsync(Task loop, int peer, CancellationTokenSource cts)
    {
        try
        {
            await loop;
        }
        catch (Exception e)
        {
            // Failures after a cancellation (timeout, caller, outside break, the other side's failure) are its echoes.
            if (!cts.IsCancellationRequested && Interlocked.CompareExchange(ref _failure, e, null) is null) _failedPeer = peer;
            try
            {
                await cts.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
            }
            _closeLinks();
        }
    }

    private async Task SendAllAsync(RingSchedule schedule, long totalElements, Memory<byte> bytes, SemaphoreSlim forwardable, CancellationTokenSource cts)
    {
        int elementSize = Unsafe.SizeOf<T>();
        var header = new FrameHeader { Generation = _generation, Step = _step, TotalElements = totalElements, ElementSize = elementSize };
        Transfer[] sends = schedule.Sends;
        for (int i = 0; i < sends.Length; i++)
        {
            Transfer t = sends[i];
            if (t.Step > 0) await forwardable.WaitAsync(cts.Token);
            header.Chunk = i;
            header.ByteLength = t.Count * elementSize;
            await _outgoing.SendMessageAsync(header, cts.Token);
            await _outgoing.SendAsync(bytes.Slice((int)(t.Offset * elementSize), header.ByteLength), cts.Token);
            _progress!.CancelAfter(_options.ProgressTimeout);
        }
    }

    private async Task ReceiveAllAsync(RingSchedule schedule, T[] data, Memory<byte> bytes, byte[] scratch, SemaphoreSlim forwardable, CancellationTokenSource cts)
    {
        int elementSize = Unsafe.SizeOf<T>();
        Transfer[] receives = schedule.Receives;
        for (int i = 0; i < receives.Length; i++)
        {
            Transfer t = receives[i];
            FrameHeader header = await _incoming.ReceiveMessageAsync<FrameHeader>(cts.Token);
            Check(header, i, t, data.Length, elementSize);
            int length = header.ByteLength;
            if (t.Add)
            {
                await _incoming.ReceiveExactlyAsync(scratch.AsMemory(0, length), cts.Token);
                ElementMath.AddInto(data.AsSpan((int)t.Offset, t.Count), MemoryMarshal.Cast<byte, T>(scratch.AsSpan(0, length)));
            }
            else
            {
                await _incoming.ReceiveExactlyAsync(bytes.Slice((int)(t.Offset * elementSize), length), cts.Token);
            }
            if (t.Step < schedule.LastStep) forwardable.Release();
            _progress!.CancelAfter(_options.ProgressTimeout);
        }
        _receivesDone = true;
    }

    private void Check(FrameHeader h, int index, Transfer expected, long totalElements, int elementSize)
    {
        string? problem =
            h.Generation != _generation ? $"a frame of generation {h.Generation} arrived on generation {_generation}"
            : h.Step != _step ? $"a frame of all-reduce #{h.Step} arrived during #{_step} (members called all-reduce in different orders)"
            : h.ElementSize != elementSize ? $"the peer reduces {h.ElementSize}-byte elements, this member {elementSize}-byte ones"
            : h.TotalElements != totalElements ? $"the peer reduces {h.TotalElements} elements, this member {totalElements}"
            : h.Chunk != index ? $"frame {h.Chunk} arrived where frame {index} was due"
            : h.ByteLength != expected.Count * elementSize ? $"frame {index} carries {h.ByteLength} bytes, {expected.Count * elementSize} were due (different chunk sizes?)"
            : null;
        if (problem is not null) throw new InvalidDataException(problem);
    }

    private static string Describe(Exception e) => e switch
    {
        EndOfStreamException => "was closed by the peer",
        InvalidDataException => "broke the protocol: " + e.Message,
        System.Net.Sockets.SocketException s => $"failed ({s.SocketErrorCode})",
        IOException { InnerException: System.Net.Sockets.SocketException s } => $"failed ({s.SocketErrorCode})", // over TLS
        ObjectDisposedException => "was closed",
        _ => $"failed: {e.Message}",
    };
}
