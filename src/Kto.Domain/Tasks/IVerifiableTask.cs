namespace Kto.Domain.Tasks;

/// <summary>A task whose answers a program can check, so feedback needs no human.</summary>
public interface IVerifiableTask
{
    /// <summary>The task's name, as <see cref="TaskRegistry"/> knows it.</summary>
    string Name { get; }

    /// <summary>Whether <paramref name="completion"/> correctly answers <paramref name="prompt"/>; never throws.</summary>
    bool IsCorrect(string prompt, string completion);
}
