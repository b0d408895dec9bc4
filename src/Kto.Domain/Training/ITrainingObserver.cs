namespace Kto.Domain.Training;

/// <summary>Progress of a long job: <paramref name="Done"/> of <paramref name="Total"/> units, with named figures.</summary>
/// <param name="Phase">What is running ("train", "precompute", "score").</param>
/// <param name="Done">Units done.</param>
/// <param name="Total">Units in all.</param>
/// <param name="Figures">Latest figures to show (e.g. loss), possibly empty.</param>
public sealed record ProgressUpdate(string Phase, long Done, long Total, IReadOnlyDictionary<string, double> Figures);

/// <summary>Receives what a long job reports; the console tool renders it.</summary>
public interface ITrainingObserver
{
    /// <summary>An informational line.</summary>
    void Info(string message);

    /// <summary>A warning the user should read.</summary>
    void Warn(string message);

    /// <summary>Progress (called often; cheap to ignore).</summary>
    void Progress(ProgressUpdate update);
}

/// <summary>Discards everything.</summary>
public sealed class NullObserver : ITrainingObserver
{
    /// <summary>The shared instance.</summary>
    public static NullObserver Instance { get; } = new();

    /// <inheritdoc />
    public void Info(string message) { }

    /// <inheritdoc />
    public void Warn(string message) { }

    /// <inheritdoc />
    public void Progress(ProgressUpdate update) { }
}
