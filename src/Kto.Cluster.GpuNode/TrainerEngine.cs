using System.Collections.Concurrent;
using System.Net;
using Kto.Cluster.Core.Logging;
using Kto.Cluster.Core.Security;
using Kto.Cluster.Exchange;
using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// What a trainer process holds across reconnections to the cluster: its ring endpoint and, once a run is loaded, the
/// replica (policy, optimizer, held step). The actor system may be torn down and rebuilt (when the cluster downs this
/// node after losing the coordinator) without losing the replica. Calls on the replica are made by one caller at a
/// time (the trainer actor runs at most one task on it).
/// </summary>
public sealed class TrainerEngine : IAsyncDisposable
{
    /// <summary>How long the members of an attempt wait for each other to connect.</summary>
    public static readonly TimeSpan RingJoinTimeout = TimeSpan.FromSeconds(8);

    private readonly RingEndpoint _endpoint;
    private TrainingSetup? _setup;
    private ReplicaTrainer? _replica;
    private Task _running = Task.CompletedTask;

    /// <summary>The look-ahead queued after the last reduction (the actor's-thread readers of the replica wait for it:
    /// a LoRA run's reference swaps the policy's modules_to_save weights while it scores).</summary>
    private Task _ahead = Task.CompletedTask;

    /// <summary>Stopwatch ticks of look-ahead and apply work since <see cref="TakeAheadSeconds"/> was last called.</summary>
    private long _aheadTicks;
    private Ring? _ring;
    private SuppliedReference? _supplied;

    /// <summary>The replica's work, run in order on <see cref="_worker"/>.</summary>
    private readonly BlockingCollection<Action> _queue = new();

    /// <summary>
    /// The thread that runs the replica's tasks (<see cref="Run"/>: steps, run and checkpoint loads, state take-overs)
    /// and the apply after a commit, for the process's life. Torch's grad mode and TorchSharp's dispose scopes are per
    /// thread, and glibc's malloc keeps freed memory per thread arena; with one thread every step finds the state and
    /// the memory the last one left, instead of whichever thread pool worker (or, for the apply, the actor's thread)
    /// was free. Evaluation, checkpoint writes and state exports for joiners still run on the actor's thread.
    /// </summary>
    private readonly Thread _worker;

    private TrainerEngine(RingEndpoint endpoint, string advertised)
    {
        _endpoint = endpoint;
        DataEndpoint = advertised;
        _worker = new Thread(() =>
        {
            foreach (Action work in _queue.GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = "replica" };
        _worker.Start();
    }

    /// <summary>host:port peers dial to reach this trainer's ring endpoint.</summary>
    public string DataEndpoint { get; }

    /// <summary>The loaded run, or null.</summary>
    public RunSpec? Spec { get; private set; }

    /// <summary>Committed steps the replica holds, or <see cref="RegisterTrainer.NoState"/> before a run is loaded.</summary>
    public int HeldStep => _replica?.HeldStep ?? RegisterTrainer.NoState;

    /// <summary>Refused ring peers, reported on stderr once per reason and window with a count of the repeats (a stranger can retry in a loop).</summary>
    private static readonly RepeatedLines RingRefusals = new(TimeSpan.FromSeconds(10), line => Console.Error.WriteLine(line));

    /// <summary>
    /// Listens on <paramref name="dataEndpoint"/> (host:port; port 0 picks a free one); with <paramref name="tls"/>,
    /// every ring connection is TLS with mutual authentication by the cluster's CA (host certificates only), and a
    /// refused peer is reported on stderr with the reason (once per reason in 10 s, with a count of the repeats).
    /// </summary>
    public static async Task<TrainerEngine> StartAsync(string dataEndpoint, CancellationToken cancel, ClusterTls? tls = null)
    {
        IPEndPoint bind = IPEndPoint.Parse(dataEndpoint);
        RingOptions options = tls is null ? RingOptions.Default : RingOptions.Default with { Tls = RingTlsOf(tls, reason => RingRefusals.Write(reason, $"ring: TLS refused a connection: {reason}")) };
        RingEndpoint endpoint = await RingEndpoint.ListenAsync(bind.Address, bind.Port, options, cancel);
        return new TrainerEngine(endpoint, endpoint.LocalEndPoint.ToString());
    }

    /// <summary>The ring's TLS from a host's: this host's certificate both ways, peers accepted only with a host certificate of the cluster's CA.</summary>
    public static RingTls RingTlsOf(ClusterTls tls, Action<string> refused) =>
        new(tls.ServerOptions(refused, CertificateHolder.Host), tls.ClientOptions(refused, CertificateHolder.Host));

    /// <summary>The task on the replica that is still running (an actor stopping mid-step waits for it).</summary>
    public Task Running => _running;

    /// <summary>Runs <paramref name="work"/> on the replica's thread as its only task.</summary>
    /// <exception cref="InvalidOperationException">Another task is running.</exception>
    public Task<T> Run<T>(Func<T> work)
    {
        if (!_running.IsCompleted) throw new InvalidOperationException("the replica is busy with another task");
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        _running = done.Task;
        return done.Task;
    }

    /// <summary>Runs <paramref name="work"/> on the replica's thread and waits for it (a short call between tasks).</summary>
    private T OnReplicaThread<T>(Func<T> work) => Thread.CurrentThread == _worker ? work() : Run(work).GetAwaiter().GetResult();

    /// <summary>
    /// Loads the run: data, policy, optimizer (the replica then holds step 0) and, unless the scorer pool supplies
    /// reference log-probs (<see cref="RunSpec.UsesScorerPool"/>), the reference model.
    /// </summary>
    /// <exception cref="InvalidDataException">This node's data or model differ from the coordinator's.</exception>
    public void Load(RunSpec spec)
    {
        if (Spec is not null) throw new InvalidOperationException($"this trainer already holds run {Spec.RunId}");
        SuppliedReference? supplied = spec.UsesScorerPool ? new SuppliedReference() : null;
        var config = spec.Config();
        spec.EnsureSameModels(config, loadsReference: !spec.UsesScorerPool);
        var setup = TrainingSetup.Prepare(config, NullObserver.Instance, supplied);
        try
        {
            spec.EnsureSameData(setup.Data);
        }
        catch
        {
            setup.Dispose();
            throw;
        }
        var replica = new ReplicaTrainer(setup);
        if (replica.TotalSteps != spec.TotalSteps)
        {
            replica.Dispose();
            setup.Dispose();
            throw new InvalidDataException($"this node plans {replica.TotalSteps} steps, the run {spec.TotalSteps}");
        }
        (_setup, _replica, _supplied, Spec) = (setup, replica, supplied, spec);
    }

    /// <summary>Whether the loaded run's reference log-probs come from the scorer pool (the reference model is not loaded).</summary>
    public bool ReferenceSupplied => _supplied is not null;

    /// <summary>Takes reference log-probs the coordinator sends ahead of a step (ignored when the run has a live reference).</summary>
    public void Supply(ReferenceScores scores) => _supplied?.Supply(scores.Indices, scores.Completion, scores.Kl);

    /// <summary>
    /// Computes the attempt's step on its ring, which is kept across attempts while the coordinator keeps its
    /// generation (so a ring is only torn down once every member has finished with it); blocks until the reduction ends.
    /// </summary>
    /// <exception cref="RingBrokenException">A member was lost or never came.</exception>
    /// <exception cref="OperationCanceledException">The attempt was aborted.</exception>
    public ReducedStep Reduce(StepStart start, int rank, CancellationToken cancel)
    {
        ReplicaTrainer replica = Replica;
        if (_ring is not { IsBroken: false } ring || ring.Generation != start.RingGeneration)
        {
            DropRing();
            IPEndPoint[] members = [.. start.Endpoints.Select(IPEndPoint.Parse)];
            ring = _endpoint.JoinAsync(members, rank, start.RingGeneration, RingJoinTimeout, cancel).GetAwaiter().GetResult();
            _ring = ring;
        }
        ReducedStep reduced;
        try
        {
            reduced = replica.Reduce(start.Step, start.Generation, new RingAllReduce(ring, cancel), start.Shares);
        }
        catch
        {
            DropRing();
            throw;
        }
        // Next on this thread, once the result has gone to the actor: the next step's reference log-probs, while the
        // report travels and the commit is persisted and announced (the apply queues behind it).
        if (replica.Lookahead is not null)
        {
            var ahead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _ahead = ahead.Task;
            _queue.Add(() =>
            {
                long began = System.Diagnostics.Stopwatch.GetTimestamp();
                ScoreAhead();
                Interlocked.Add(ref _aheadTicks, System.Diagnostics.Stopwatch.GetTimestamp() - began);
                ahead.SetResult();
            });
        }
        return reduced;
    }

    /// <summary>Scores the next step's reference ahead (see <see cref="ReplicaTrainer.ScoreNextStepAhead"/>); a failure
    /// only costs the look-ahead (the step scores its shards itself and reports what fails there).</summary>
    private void ScoreAhead()
    {
        try
        {
            Replica.ScoreNextStepAhead();
        }
        catch (Exception e)
        {
            Replica.Lookahead?.Forget();
            Console.Error.WriteLine($"scoring the next step's reference ahead failed: {e.Message}");
        }
    }

    private void DropRing()
    {
        _ring?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _ring = null;
    }

    /// <summary>Applies a committed attempt.</summary>
    public double Apply(int step, long generation) => OnReplicaThread(() =>
    {
        long began = System.Diagnostics.Stopwatch.GetTimestamp();
        double norm = Replica.Apply(step, generation);
        Interlocked.Add(ref _aheadTicks, System.Diagnostics.Stopwatch.GetTimestamp() - began);
        return norm;
    });

    /// <summary>Seconds of work done for the next attempt before it starts (the reference scored ahead and the apply)
    /// since the last call (<see cref="StepReduced.AheadSeconds"/>).</summary>
    public double TakeAheadSeconds() => Interlocked.Exchange(ref _aheadTicks, 0) / (double)System.Diagnostics.Stopwatch.Frequency;

    /// <summary>Forgets reduced gradients that will not be committed.</summary>
    public void Discard() => _replica?.Discard();

    /// <summary>Writes a checkpoint of the held step under <paramref name="outputDir"/>; returns its path and the hash of its trainer_state.json.</summary>
    public (string Path, string Sha256) SaveCheckpoint(string outputDir, int saveTotalLimit)
    {
        Directory.CreateDirectory(outputDir);
        _ahead.Wait();
        string path = Replica.SaveCheckpoint(outputDir);
        if (saveTotalLimit > 0) TrainingCheckpoint.Prune(outputDir, saveTotalLimit);
        return (path, AtomicFile.Sha256(Path.Combine(path, TrainingCheckpoint.StateFile)));
    }

    /// <summary>Loads a checkpoint of this run.</summary>
    public void RestoreCheckpoint(string dir) => Replica.RestoreCheckpoint(dir);

    /// <summary>The eval line of the held weights (see <see cref="ReplicaTrainer.Evaluate"/>).</summary>
    public Dictionary<string, double> Evaluate()
    {
        _ahead.Wait();
        return Replica.Evaluate();
    }

    /// <summary>The replica's state image (see <see cref="ReplicaTrainer.ExportState"/>).</summary>
    public byte[] ExportState()
    {
        _ahead.Wait();
        return Replica.ExportState();
    }

    /// <summary>Takes over a state image from a synced replica.</summary>
    public void ImportState(byte[] image) => Replica.ImportState(image);

    private ReplicaTrainer Replica => _replica ?? throw new InvalidOperationException("no run is loaded on this trainer");

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _running.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // the task's outcome was reported (or no longer matters) when the node stops
        }
        _queue.CompleteAdding();
        _worker.Join(); // after a look-ahead still scoring (queued behind the last task), before the models go
        DropRing();
        _replica?.Dispose();
        _setup?.Dispose();
        await _endpoint.DisposeAsync();
        _queue.Dispose();
    }
}
