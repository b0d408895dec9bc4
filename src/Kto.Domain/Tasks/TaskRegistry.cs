namespace Kto.Domain.Tasks;

/// <summary>Finds a verifiable task by name.</summary>
public static class TaskRegistry
{
    /// <summary>Names of the tasks this build knows.</summary>
    public static IReadOnlyList<string> Names { get; } = [AdditionTask.TaskName];

    /// <summary>The task called <paramref name="name"/>, with operands of <paramref name="digits"/> digits where that applies.</summary>
    /// <exception cref="ArgumentException">No task has that name, or the digit count is out of range.</exception>
    public static IVerifiableTask Get(string name, int digits = AdditionTask.DefaultDigits) => name switch
    {
        AdditionTask.TaskName => new AdditionTask(digits),
        _ => throw new ArgumentException($"unknown task \"{name}\"; known: {string.Join(", ", Names)}", nameof(name)),
    };
}
