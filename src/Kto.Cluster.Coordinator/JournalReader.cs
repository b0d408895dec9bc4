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
    public static Task<IReadOnlyList<IRunEvent>> ReadAsync(ActorSystem system, string runId, CancellationToken cancel = default)
        => ReadAsync<IRunEvent>(system, RunCoordinatorActor.PersistenceIdOf(runId), cancel);

    /// <summary>The stored reference log-probs of a dataset under a reference, in journal order.</summary>
    public static Task<IReadOnlyList<ScoresStored>> ReadScoresAsync(ActorSystem system, string datasetFingerprint, string referenceHash, CancellationToken cancel = default)
        => ReadAsync<ScoresStored>(system, ReferenceScoresActor.PersistenceIdOf(datasetFingerprint, referenceHash), cancel);

    private static async Task<IReadOnlyList<T>> ReadAsync<T>(ActorSystem system, string persistenceId, CancellationToken cancel)
    {
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        var events = new List<T>();
        await journal.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue)
            .Select(e => e.Event)
            .RunForeach(e => { if (e is T t) events.Add(t); }, system.Materializer())
            .WaitAsync(cancel);
        return events;
    }
}
