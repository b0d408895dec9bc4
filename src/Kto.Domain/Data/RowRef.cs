namespace Kto.Domain.Data;

/// <summary>Where a row is: the file, the unit ("line" for JSONL, "row" for Parquet) and its 1-based number.</summary>
internal readonly record struct RowRef(string File, string Unit, int Number)
{
    /// <summary>The JSONL unit.</summary>
    public const string Line = "line";

    /// <summary>The Parquet unit.</summary>
    public const string Row = "row";

    /// <summary>"file:line N" or "file:row N".</summary>
    public override string ToString() => $"{File}:{Unit} {Number}";
}
