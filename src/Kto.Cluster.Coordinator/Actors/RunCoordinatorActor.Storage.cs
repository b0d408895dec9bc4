using System.Globalization;
using Akka.Actor;
using Akka.Event;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>
/// Storage the run depends on besides the journal: metrics.jsonl (a projection of the journal, written again once it
/// can be) and checkpoints (retried at a later step boundary with a back-off); and journal failures, reported to the
/// <see cref="RunCoordinatorSupervisor"/> before Akka.Persistence stops this actor.
/// </summary>
public sealed partial class RunCoordinatorActor
{
    /// <summary>First pause before a failed checkpoint write is tried again (at the next step boundary after it).</summary>
    public static readonly TimeSpan FirstCheckpointRetry = TimeSpan.FromSeconds(2);

    /// <summary>The pause doubles up to this.</summary>
    public static readonly TimeSpan MaxCheckpointRetry = TimeSpan.FromSeconds(30);

    private const string MetricsStorage = "metrics";
    private const string CheckpointStorage = "checkpoint";

    /// <summary>Failing storage by kind: since when, attempts, the last error.</summary>
    private readonly Dictionary<string, (DateTime Since, int Attempts, string Message)> _failing = new(StringComparer.Ordinal);

    /// <summary>Commits (replayed or new) not yet handed to <see cref="_metrics"/> because it could not be opened yet.</summary>
    private readonly List<StepCommitted> _unlogged = [];
    private readonly List<EvaluationRecorded> _unloggedEvaluations = [];
    private bool _readingBacklog;

    /// <summary>Who writes the journal from this process (recorded in <see cref="CoordinatorIncarnated"/>).</summary>
    public static string WriterName(ActorSystem system)
    {
        string address = system is ExtendedActorSystem e ? e.Provider.DefaultAddress.ToString() : system.Name;
        return $"{address} (pid {Environment.ProcessId} on {Environment.MachineName})";
    }

    private void StorageCommands()
    {
        Command<CheckpointFailed>(f =>
        {
            int attempts = _failing.TryGetValue(CheckpointStorage, out var known) ? known.Attempts + 1 : 1;
            TimeSpan pause = TimeSpan.FromTicks(Math.Min(MaxCheckpointRetry.Ticks, FirstCheckpointRetry.Ticks << Math.Min(20, attempts - 1)));
            Failing(CheckpointStorage, string.Create(CultureInfo.InvariantCulture,
                $"checkpoint after step {f.Step} failed on {f.TrainerId}: {f.Reason}; retried at a step boundary after {pause.TotalSeconds:0} s"));
            Drive(new CheckpointWriteFailed(f.TrainerId, f.Step, DateTime.UtcNow + pause));
        });
        Command<MetricsBacklog>(b =>
        {
            _readingBacklog = false;
            foreach (StepCommitted c in b.Commits) _metrics?.Add(c);
            FlushMetrics();
        });
        Command<Status.Failure>(f =>
        {
            _readingBacklog = false;
            Failing(MetricsStorage, $"{_metrics?.FilePath}: reading the journal to write the missing lines failed: {f.Cause.Message}");
        });
    }

    /// <summary>Takes an evaluation for metrics.jsonl (replayed during recovery, or just persisted) and writes what it can.</summary>
    private void LogEvaluation(EvaluationRecorded evaluation)
    {
        if (_metrics is null) _unloggedEvaluations.Add(evaluation);
        else _metrics.AddEvaluation(evaluation);
        if (_ready) FlushMetrics();
    }

    /// <summary>Takes a commit for metrics.jsonl (replayed during recovery, or just persisted) and writes what it can.</summary>
    private void LogMetrics(StepCommitted commit)
    {
        if (_metrics is null) _unlogged.Add(commit);
        else _metrics.Add(commit);
        if (_ready) FlushMetrics();
    }

    /// <summary>
    /// Opens metrics.jsonl if needed and writes every window whose commits are here. Lines the file lacks from before
    /// the events this incarnation replayed are read from the journal first. A failure is reported in <c>run status</c>
    /// and retried every second (housekeeping); nothing is lost, since the lines are a projection of the journal.
    /// </summary>
    private void FlushMetrics()
    {
        if (_state.Spec is not { } spec || _readingBacklog) return;
        try
        {
            if (_metrics is null)
            {
                _metrics = ClusterMetricsLog.Open(spec, Config, _state.CommittedSteps, _state.FirstStep);
                foreach (StepCommitted c in _unlogged) _metrics.Add(c);
                _unlogged.Clear();
                foreach (EvaluationRecorded e in _unloggedEvaluations) _metrics.AddEvaluation(e);
                _unloggedEvaluations.Clear();
                if (_metrics.LoggedStep < _state.CommittedSteps && !_metrics.Holds(_metrics.LoggedStep))
                {
                    // The file is behind the events replayed since the last snapshot: the rest are in the journal.
                    _readingBacklog = true;
                    JournalReader.ReadAsync(Context.System, spec.RunId).PipeTo(Self,
                        success: events => new MetricsBacklog([.. events.OfType<StepCommitted>()]));
                    return;
                }
            }
            int lines = _metrics.Flush();
            if (Resolved(MetricsStorage)) Log.Info("{0} writable again: {1} line(s) written", _metrics.FilePath, lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Kto.Domain.Options.ConfigException)
        {
            string file = _metrics?.FilePath ?? "metrics.jsonl";
            Failing(MetricsStorage, $"{file}: {e.Message}; lines after step {_metrics?.LoggedStep ?? 0} are written from the journal once it can be");
        }
    }

    /// <summary>Records a failing storage: the first failure is logged; <c>run status</c> shows the latest.</summary>
    private void Failing(string kind, string message)
    {
        bool first = !_failing.TryGetValue(kind, out var known);
        _failing[kind] = (first ? DateTime.UtcNow : known.Since, first ? 1 : known.Attempts + 1, message);
        if (!first) return;
        Log.Warning(message);
        Note($"warning: {message}");
    }

    /// <summary>Clears a failing storage; true if it was failing.</summary>
    private bool Resolved(string kind) => _failing.Remove(kind);

    private List<string> Warnings() =>
    [
        .. _failing.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => string.Create(CultureInfo.InvariantCulture,
            $"{kv.Key} storage failing since {kv.Value.Since:HH:mm:ss} ({kv.Value.Attempts} attempt(s)): {kv.Value.Message}")),
    ];

    /// <inheritdoc />
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Log.Error("writing event {0} ({1}) of {2} failed: {3}", sequenceNr, @event.GetType().Name, PersistenceId, JournalFaults.Describe(cause));
        Context.Parent.Tell(new JournalFailed(cause, Recovering: false, null, @event.GetType().Name, sequenceNr, _state));
    }

    /// <inheritdoc />
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // The event was not stored and its handler will not run: stop, and recover from the journal like after a failure.
        Log.Error("event {0} ({1}) of {2} rejected by the journal: {3}", sequenceNr, @event.GetType().Name, PersistenceId, JournalFaults.Describe(cause));
        Context.Parent.Tell(new JournalFailed(cause, Recovering: false, null, @event.GetType().Name, sequenceNr, _state));
        Context.Stop(Self);
    }

    /// <inheritdoc />
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        Log.Error("recovering {0} failed at sequence number {1}: {2}", PersistenceId, LastSequenceNr, JournalFaults.Describe(reason));
        Context.Parent.Tell(new JournalFailed(reason, Recovering: true, message, message?.GetType().Name, LastSequenceNr, _state));
    }

    /// <summary>Commits the journal holds from before this incarnation's replay (read for metrics.jsonl).</summary>
    private sealed record MetricsBacklog(IReadOnlyList<StepCommitted> Commits);
}
