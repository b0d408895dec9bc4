namespace Kto.Domain.Cluster;

/// <summary>
/// Reference log-probs known so far for a dataset of <see cref="Count"/> examples: what the scorer pool's journal
/// holds, folded. A value is set once; a later value for the same index is ignored (it can only be a redundant
/// recomputation of the same example).
/// </summary>
public sealed class ReferenceScoreTable
{
    private readonly double[] _completion;
    private readonly double[] _kl;
    private readonly bool[] _has;

    /// <summary>An empty table for <paramref name="count"/> examples.</summary>
    public ReferenceScoreTable(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Count = count;
        _completion = new double[count];
        _kl = new double[count];
        _has = new bool[count];
    }

    /// <summary>Examples in the dataset.</summary>
    public int Count { get; }

    /// <summary>Examples with values.</summary>
    public int Stored { get; private set; }

    /// <summary>Whether example <paramref name="index"/> has values.</summary>
    public bool Has(int index) => _has[index];

    /// <summary>Whether every one of <paramref name="indices"/> has values.</summary>
    public bool HasAll(IEnumerable<int> indices) => indices.All(i => _has[i]);

    /// <summary>Adds values; returns how many indices were new.</summary>
    /// <exception cref="ArgumentException">Lengths differ or an index is outside the dataset.</exception>
    public int Add(IReadOnlyList<int> indices, IReadOnlyList<double> completion, IReadOnlyList<double> kl)
    {
        if (completion.Count != indices.Count || kl.Count != indices.Count)
            throw new ArgumentException($"{indices.Count} indices but {completion.Count} completion and {kl.Count} KL values");
        foreach (int i in indices)
            if (i < 0 || i >= Count) throw new ArgumentException($"index {i} is outside the dataset's {Count} examples");
        int added = 0;
        for (int k = 0; k < indices.Count; k++)
        {
            int i = indices[k];
            if (_has[i]) continue;
            (_completion[i], _kl[i], _has[i]) = (completion[k], kl[k], true);
            added++;
        }
        Stored += added;
        return added;
    }

    /// <summary>The values of <paramref name="indices"/>, which must all be present.</summary>
    /// <exception cref="KeyNotFoundException">An index has no values yet.</exception>
    public (int[] Indices, double[] Completion, double[] Kl) Get(IEnumerable<int> indices)
    {
        int[] idx = [.. indices];
        foreach (int i in idx)
            if (!_has[i]) throw new KeyNotFoundException($"no reference log-probs for example {i} yet");
        return (idx, [.. idx.Select(i => _completion[i])], [.. idx.Select(i => _kl[i])]);
    }

    /// <summary>Every stored value, as a journal snapshot.</summary>
    public ScoresSnapshot ToSnapshot()
    {
        int[] idx = [.. Enumerable.Range(0, Count).Where(i => _has[i])];
        return new ScoresSnapshot(Count, idx, [.. idx.Select(i => _completion[i])], [.. idx.Select(i => _kl[i])]);
    }

    /// <summary>The table a snapshot holds.</summary>
    /// <exception cref="ArgumentException">The snapshot is of another dataset size or malformed.</exception>
    public static ReferenceScoreTable FromSnapshot(ScoresSnapshot s)
    {
        var table = new ReferenceScoreTable(s.Count);
        table.Add(s.Indices, s.Completion, s.Kl);
        return table;
    }
}
