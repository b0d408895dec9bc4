using Kto.Domain.Training;

namespace Kto.Domain.Cluster;

/// <summary>
/// A live reference model whose scores of a replica's next step are computed ahead, while the member would otherwise
/// wait (for the coordinator's commit of the step it just reduced). The reference is frozen, so a shard's scores do
/// not depend on when they are formed; they are kept per shard — the exact items in their order, as
/// <see cref="ReplicaStep"/> scores them — and handed out by <see cref="Score"/> only for that same shard, so the
/// values (and bits) a step uses are those the same call would have given in the step. A shard that the step does not
/// ask for (the membership changed) is dropped at the next <see cref="ScoreAhead"/>. One caller at a time.
/// </summary>
public sealed class ReferenceLookahead(IReferenceModel inner) : IReferenceModel
{
    private readonly Dictionary<string, ReferenceLogps[]> _ahead = new(StringComparer.Ordinal);

    /// <summary>Shards a step asked for that had been scored ahead.</summary>
    public long Hits { get; private set; }

    /// <summary>Shards a step asked for that had not (the first step after a load, or a new membership).</summary>
    public long Misses { get; private set; }

    /// <summary>Shards scored ahead and not yet asked for.</summary>
    public int Held => _ahead.Count;

    /// <summary>The scores of <paramref name="items"/>: those scored ahead for exactly this shard, else the reference's.</summary>
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items)
    {
        if (items.Count > 0 && _ahead.Remove(Key(items), out ReferenceLogps[]? ready))
        {
            Hits++;
            return ready;
        }
        if (items.Count > 0) Misses++;
        return inner.Score(items);
    }

    /// <summary>Drops what was scored ahead before and scores <paramref name="shards"/> (empty ones are skipped).</summary>
    public void ScoreAhead(IEnumerable<IReadOnlyList<TrainItem>> shards)
    {
        _ahead.Clear();
        foreach (IReadOnlyList<TrainItem> shard in shards)
            if (shard.Count > 0) _ahead[Key(shard)] = inner.Score(shard);
    }

    /// <summary>Drops what was scored ahead.</summary>
    public void Forget() => _ahead.Clear();

    private static string Key(IReadOnlyList<TrainItem> items) => string.Join(',', items.Select(i => i.Index));

    /// <summary>Does not dispose the wrapped reference (the training setup owns it).</summary>
    public void Dispose() => _ahead.Clear();
}
