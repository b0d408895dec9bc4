using System.Globalization;
using Akka.Actor;
using Akka.Event;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>A journal operation of the run coordinator failed; it stops right after telling its supervisor (local only).</summary>
/// <param name="Cause">The journal's exception.</param>
/// <param name="Recovering">Whether it failed while recovering (reading) rather than persisting (writing).</param>
/// <param name="Event">The event being replayed when the coordinator's own recovery handler threw, else null.</param>
/// <param name="EventType">The event's type, if one was involved.</param>
/// <param name="SequenceNr">The sequence number of that event, or the last one read.</param>
/// <param name="State">The run state the coordinator held.</param>
public sealed record JournalFailed(Exception Cause, bool Recovering, object? Event, string? EventType, long SequenceNr, RunState State);

/// <summary>The run coordinator recovered and persisted its incarnation: the journal works (local only).</summary>
public sealed record CoordinatorRunning(RunState State);

/// <summary>
/// The run-coordinator singleton: a supervisor that runs the event-sourced <see cref="RunCoordinatorActor"/> as its
/// child and starts it again after a journal failure, with a back-off from <see cref="FirstBackoff"/> doubling to
/// <see cref="MaxBackoff"/>, for as long as the failure is <see cref="JournalFaultKind.Transient"/> (a full disk, a lost
/// database). Akka.Persistence stops a persistent actor whose persist failed; the new child recovers from the journal,
/// which settles the event whose write was uncertain (it is either there, and replayed once, or not). While no child
/// runs, <c>run status</c> and every command are answered with the failure. A journal another coordinator writes, or
/// one that cannot be recovered, ends the host through its <c>onFatal</c> callback with a one-line reason.
/// </summary>
public sealed class RunCoordinatorSupervisor : ReceiveActor, IWithTimers
{
    /// <summary>First pause before the coordinator starts again after a transient journal failure.</summary>
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);

    /// <summary>The pause doubles up to this.</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly Props _child;
    private readonly string _runId;
    private readonly string _journal;
    private readonly Action<string>? _onFatal;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef? _run;
    private JournalFailed? _failure;
    private RunState _last = RunState.Empty;
    private int _attempts;
    private DateTime _failingSince;
    private DateTime _retryAt;
    private string? _trouble;
    private string? _fatal;

    /// <summary>Creates the supervisor.</summary>
    /// <param name="child">Props of the run coordinator.</param>
    /// <param name="runId">The run.</param>
    /// <param name="journal">The journal for people (file path, or PostgreSQL database), named in errors.</param>
    /// <param name="onFatal">Called once with a one-line reason when the run cannot be driven from this journal.</param>
    public RunCoordinatorSupervisor(Props child, string runId, string journal, Action<string>? onFatal)
    {
        _child = child;
        _runId = runId;
        _journal = journal;
        _onFatal = onFatal;
        Receive<JournalFailed>(f =>
        {
            _failure = f;
            if (f.State.Incarnation > 0) _last = f.State;
        });
        Receive<CoordinatorRunning>(r =>
        {
            _last = r.State;
            if (_attempts > 0) _log.Info("journal {0} works again after {1} failed attempt(s); the run coordinator is running", _journal, _attempts);
            _attempts = 0;
            _trouble = null;
        });
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(_run)) return;
            _run = null;
            Self.Tell(ChildStopped.Instance); // after a JournalFailed the child sent just before it stopped
        });
        Receive<ChildStopped>(_ => OnChildStopped());
        Receive<StartChild>(_ => Start());
        Receive<AnotherWriter>(w => Fatal(w.Reason));
        Receive<EndHost>(e => _onFatal?.Invoke(e.Reason));
        ReceiveAny(Forward);
        Start();
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props of the supervisor.</summary>
    public static Props Props(Props child, string runId, string journal, Action<string>? onFatal)
        => Akka.Actor.Props.Create(() => new RunCoordinatorSupervisor(child, runId, journal, onFatal));

    /// <summary>The pause after <paramref name="attempts"/> failed attempts in a row (1 s, 2 s, 4 s, … at most 30 s).</summary>
    public static TimeSpan Backoff(int attempts) =>
        TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks << Math.Min(20, Math.Max(0, attempts - 1))));

    /// <inheritdoc />
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(_ => Directive.Stop); // a coordinator that throws starts again from the journal, never from its memory

    private void Start()
    {
        if (_fatal is not null) return;
        _failure = null;
        _run = Context.ActorOf(_child, "run");
        Context.Watch(_run);
    }

    private void OnChildStopped()
    {
        if (_fatal is not null) return;
        JournalFailed? f = _failure;
        JournalFaultKind kind = f is null ? JournalFaultKind.Transient : JournalFaults.Classify(f.Cause, f.Event);
        string what = f is null ? "the run coordinator stopped" : Describe(f);
        switch (kind)
        {
            case JournalFaultKind.Damaged:
                Fatal($"journal {_journal} of run {_runId} cannot be recovered: {what}. {JournalCheck.WhatToDo}");
                return;
            case JournalFaultKind.AnotherWriter:
                NameTheOtherWriter(what);
                return;
        }
        if (_attempts == 0) _failingSince = DateTime.UtcNow;
        _attempts++;
        TimeSpan pause = Backoff(_attempts);
        _retryAt = DateTime.UtcNow + pause;
        _trouble = string.Create(CultureInfo.InvariantCulture,
            $"journal {_journal} failing since {_failingSince:HH:mm:ss} ({_attempts} attempt(s)): {what}; the run coordinator starts again from the journal at {_retryAt:HH:mm:ss}");
        _log.Warning(_trouble);
        Timers.StartSingleTimer("start", StartChild.Instance, pause);
    }

    private static string Describe(JournalFailed f)
    {
        string op = f.Recovering ? f.Event is not null ? $"event {f.SequenceNr} ({f.EventType}) does not follow from the events before it"
            : $"reading events after {f.SequenceNr} failed" : $"writing event {f.SequenceNr} ({f.EventType}) failed";
        return $"{op}: {JournalFaults.Describe(f.Cause)}";
    }

    /// <summary>Reads the journal for the newest incarnation claimed by someone else, and ends the host naming it.</summary>
    private void NameTheOtherWriter(string what)
    {
        _trouble = $"another coordinator writes the journal of run {_runId}";
        string self = RunCoordinatorActor.WriterName(Context.System);
        string prefix = $"run {_runId}: another coordinator writes its journal {_journal} ({what})";
        JournalReader.ReadAsync(Context.System, _runId).ContinueWith(t =>
        {
            CoordinatorIncarnated? other = t.IsCompletedSuccessfully
                ? t.Result.OfType<CoordinatorIncarnated>().LastOrDefault(c => c.Writer != self)
                : null;
            string who = other is null ? "its writer is not recorded"
                : $"incarnation {other.Incarnation} was claimed by {other.Writer ?? "a coordinator of an earlier version"}";
            return new AnotherWriter($"{prefix}; {who}. This host stops: stop the other coordinator first, or give this one another --run-id");
        }, TaskScheduler.Default).PipeTo(Self);
    }

    /// <summary>
    /// The run cannot be driven from this journal: the trainers of this cluster are told (they exit 2 rather than wait
    /// for a coordinator that will not come back), then the host is told to end.
    /// </summary>
    private void Fatal(string reason)
    {
        if (_fatal is not null) return;
        _fatal = reason;
        _trouble = reason;
        _log.Error(reason);
        if (Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal))
        {
            foreach (Akka.Cluster.Member m in Akka.Cluster.Cluster.Get(Context.System).State.Members.Where(m => m.HasRole(Kto.Cluster.Core.ClusterRoles.Trainer)))
                Context.ActorSelection(new RootActorPath(m.Address) / "user" / Kto.Cluster.Core.ClusterRoles.TrainerActor)
                    .Tell(new TrainerRefused("", _runId, $"the coordinator of run {_runId} stopped: {reason}"));
            Timers.StartSingleTimer("fatal", new EndHost(reason), TimeSpan.FromMilliseconds(500)); // lets the notices leave
            return;
        }
        _onFatal?.Invoke(reason);
    }

    private sealed record EndHost(string Reason);

    private void Forward(object message)
    {
        if (_run is not null)
        {
            _run.Forward(message);
            return;
        }
        string trouble = _trouble ?? "the run coordinator is starting";
        switch (message)
        {
            case GetClusterStatus:
                Sender.Tell(new ClusterStatus(_last, [], null, null, [], [trouble]));
                break;
            case GetScoringStatus:
                Sender.Tell(new ScoringStatus(0, 0, []));
                break;
            case GetRecentLines:
                Sender.Tell(new RecentLines([]));
                break;
            case IRunCommand:
                Sender.Tell(new CommandRejected(trouble));
                break;
            // node messages (registrations, step reports) are dropped: nodes repeat them until a coordinator answers
        }
    }

    private sealed class StartChild
    {
        public static readonly StartChild Instance = new();
    }

    private sealed class ChildStopped
    {
        public static readonly ChildStopped Instance = new();
    }

    private sealed record AnotherWriter(string Reason);
}
