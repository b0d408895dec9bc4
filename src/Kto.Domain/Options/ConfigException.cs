namespace Kto.Domain.Options;

/// <summary>A run config that cannot be used; the message names the file, the line and the key.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConfigException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public ConfigException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates an empty exception (serialization-compatible constructor).</summary>
    public ConfigException() { }
}
