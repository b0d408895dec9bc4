using Akka.Actor;
using Akka.Event;
using Kto.Domain.Cluster;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// A reference scorer in the cluster: registers with the run coordinator until it is given a run that precomputes
/// reference log-probs, loads that run's data and reference model, registers again as ready, and then scores the
/// units the coordinator's scoring scheduler sends, one at a time in arrival order, replying to the scheduler.
/// </summary>
public sealed class ScorerNodeActor : ReceiveActor, IWithTimers
{
    /// <summary>How often an unanswered registration is repeated.</summary>
    public static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often a scorer that was told no run needs it asks again.</summary>
    public static readonly TimeSpan IdleInterval = TimeSpan.FromSeconds(5);

    private const string RegisterTimer = "register";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _coordinator;
    private readonly string _scorerId;
    private readonly ScorerHolder _holder;
    private readonly Queue<(ScoreUnit Unit, IActorRef ReplyTo)> _queue = new();
    private bool _busy;
    private string? _idleReason;

    /// <summary>Creates the scorer <paramref name="scorerId"/>; <paramref name="holder"/> keeps its loaded run across actor systems.</summary>
    public ScorerNodeActor(IActorRef coordinator, string scorerId, ScorerHolder holder)
    {
        _coordinator = coordinator;
        _scorerId = scorerId;
        _holder = holder;

        Receive<RegisterTick>(_ => _coordinator.Tell(new RegisterScorer(_scorerId, _holder.Engine?.Spec.RunId)));
        Receive<ScorerRegistered>(OnRegistered);
        Receive<Reregister>(r =>
        {
            _log.Info("coordinator incarnation {0} asks scorers to register", r.Incarnation);
            _queue.Clear(); // units given by the previous incarnation are no longer awaited
            Register(RegisterInterval);
        });
        Receive<Loaded>(l =>
        {
            _busy = false;
            if (l.Error is not null)
            {
                _log.Error("loading run {0} failed: {1}", l.Spec.RunId, l.Error.Message);
                Register(IdleInterval);
                return;
            }
            _holder.Engine = l.Engine;
            _log.Info("run {0} loaded: scoring with the reference model", l.Spec.RunId);
            Register(RegisterInterval);
        });
        Receive<ScoreUnit>(u =>
        {
            _queue.Enqueue((u, Sender));
            Next();
        });
        Receive<Scored>(s =>
        {
            _busy = false;
            if (s.Error is null)
            {
                s.ReplyTo.Tell(s.Result!);
                _log.Info("scored unit {0} ({1} examples, {2:0} ms)", s.Result!.Unit, s.Result.Indices.Length, s.Milliseconds);
            }
            else
            {
                _log.Error("scoring unit {0} failed: {1}", s.Unit, s.Error.Message);
            }
            Next();
        });
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props of the actor.</summary>
    public static Props Props(IActorRef coordinator, string scorerId, ScorerHolder holder) => Akka.Actor.Props.Create(() => new ScorerNodeActor(coordinator, scorerId, holder));

    /// <inheritdoc />
    protected override void PreStart() => Register(RegisterInterval);

    private void Register(TimeSpan interval) => Timers.StartPeriodicTimer(RegisterTimer, RegisterTick.Instance, TimeSpan.Zero, interval);

    private void OnRegistered(ScorerRegistered r)
    {
        if (r.Spec is null)
        {
            if (_idleReason != r.Reason) _log.Info("idle: {0}", r.Reason);
            _idleReason = r.Reason;
            Register(IdleInterval);
            return;
        }
        _idleReason = null;
        if (_holder.Engine is { } engine)
        {
            if (engine.Spec == r.Spec)
            {
                Timers.Cancel(RegisterTimer);
                return; // registered as ready: units will come
            }
            _log.Info("the coordinator runs {0}; dropping run {1}", r.Spec.RunId, engine.Spec.RunId);
            _holder.Engine = null;
            engine.Dispose();
            _queue.Clear();
        }
        if (_busy) return;
        Timers.Cancel(RegisterTimer);
        _busy = true;
        RunSpec spec = r.Spec;
        IActorRef self = Self;
        _log.Info("loading run {0}: {1} examples, reference sha256 {2}…", spec.RunId, spec.ExampleCount, spec.ReferenceHash![..12]);
        Task.Run(() => ScorerEngine.Load(spec)).ContinueWith(t =>
            self.Tell(new Loaded(spec, t.IsCompletedSuccessfully ? t.Result : null, t.Exception?.GetBaseException())), TaskScheduler.Default);
    }

    private void Next()
    {
        if (_busy || _holder.Engine is not { } engine || !_queue.TryDequeue(out var job)) return;
        _busy = true;
        IActorRef self = Self;
        string id = _scorerId;
        Task.Run(() =>
        {
            long start = Environment.TickCount64;
            var (completion, kl) = engine.Score(job.Unit.Indices);
            return (Result: new UnitScored(id, job.Unit.Unit, job.Unit.Indices, completion, kl), Ms: Environment.TickCount64 - start);
        }).ContinueWith(t => self.Tell(t.IsCompletedSuccessfully
            ? new Scored(job.Unit.Unit, job.ReplyTo, t.Result.Result, t.Result.Ms, null)
            : new Scored(job.Unit.Unit, job.ReplyTo, null, 0, t.Exception?.GetBaseException())), TaskScheduler.Default);
    }

    private sealed record Loaded(RunSpec Spec, ScorerEngine? Engine, Exception? Error);

    private sealed record Scored(int Unit, IActorRef ReplyTo, UnitScored? Result, long Milliseconds, Exception? Error);

    private sealed class RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }
}

/// <summary>Holds a scorer's loaded run across the actor systems of one node process.</summary>
public sealed class ScorerHolder : IDisposable
{
    /// <summary>The loaded run, or null.</summary>
    public ScorerEngine? Engine { get; set; }

    /// <inheritdoc />
    public void Dispose() => Engine?.Dispose();
}
