using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Kto.Cluster.Coordinator.Actors;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Coordinator;

/// <summary>Reads a run's events straight from the journal (Akka.Persistence.Query), e.g. for <see cref="JournalAudit"/>.</summary>
public static class JournalReader
{
    /// <summary>Every event of run <paramref name="runId"/> in journal order.</summary>
    public static async Task<IReadOnlyList<IRunEvent>> ReadAsync(ActorSystem system, string runId, CancellationToken cancel = default)
    {
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        var events = new List<IRunEvent>();
        await journal.CurrentEventsByPersistenceId(RunCoordinatorActor.PersistenceIdOf(runId), 0, long.MaxValue)
            .Select(e => e.Event)
            .RunForeach(e => { if (e is IRunEvent run) events.Add(run); }, system.Materializer())
            .WaitAsync(cancel);
        return events;
    }
}
