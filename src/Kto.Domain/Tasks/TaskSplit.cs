namespace Kto.Domain.Tasks;

/// <summary>The two disjoint parts of a task's problems.</summary>
public enum TaskSplit
{
    /// <summary>Problems for training data (supervised and feedback).</summary>
    Train,

    /// <summary>Held-out problems for measuring; never in training data.</summary>
    Eval,
}
