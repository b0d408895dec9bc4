namespace Kto.Domain.Data;

/// <summary>
/// A dataset file that cannot be used. The message names the file and, for a bad row, where it is and what was wrong:
/// <c>&lt;file&gt;:line N: field "name": expected …, found …</c> (JSONL) or <c>&lt;file&gt;:row N: …</c> (Parquet);
/// problems with the whole file read <c>&lt;file&gt;: …</c>, such as <c>train.jsonl: no examples</c>.
/// </summary>
public sealed class DataException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DataException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public DataException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates an empty exception (serialization-compatible constructor).</summary>
    public DataException() { }
}
