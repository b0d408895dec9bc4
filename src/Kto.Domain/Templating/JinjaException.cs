namespace Kto.Domain.Templating;

/// <summary>A template that cannot be parsed or rendered, or that called <c>raise_exception</c>; <see cref="Line"/> is the template line (1-based).</summary>
public sealed class JinjaException : Exception
{
    /// <summary>A failure at template line <paramref name="line"/>.</summary>
    public JinjaException(string message, int line) : base($"line {line}: {message}") => Line = line;

    /// <summary>The template line the failure belongs to.</summary>
    public int Line { get; }
}
