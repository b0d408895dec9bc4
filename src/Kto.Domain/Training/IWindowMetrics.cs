namespace Kto.Domain.Training;

/// <summary>
/// Metric sums of a training objective: added over micro-batches and steps, turned into named means for a
/// <c>metrics.jsonl</c> line by <see cref="ToDictionary"/>.
/// </summary>
/// <typeparam name="TSelf">The implementing type.</typeparam>
public interface IWindowMetrics<TSelf> where TSelf : IWindowMetrics<TSelf>
{
    /// <summary>Nothing yet.</summary>
    static abstract TSelf Zero { get; }

    /// <summary>Adds two sets of sums.</summary>
    static abstract TSelf operator +(TSelf a, TSelf b);

    /// <summary>Tokens processed, for tokens/s.</summary>
    long Tokens { get; }

    /// <summary>The metrics by name.</summary>
    Dictionary<string, double> ToDictionary();
}
