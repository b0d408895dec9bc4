using System.Globalization;

namespace Kto.Domain.Data;

/// <summary>
/// One field value of a dataset row, whatever file it came from: JSON values and Parquet cells both become these, so
/// one parser checks every format.
/// </summary>
internal abstract record DataValue
{
    /// <summary>Longest string excerpt quoted in an error message.</summary>
    public const int QuoteLimit = 40;

    /// <summary>What this value is, for the "found …" part of an error message.</summary>
    public abstract string Describe();
}

/// <summary>JSON null or a Parquet null cell.</summary>
internal sealed record NullValue : DataValue
{
    /// <summary>The shared instance.</summary>
    public static NullValue Instance { get; } = new();

    /// <inheritdoc />
    public override string Describe() => "null";
}

/// <summary>A boolean.</summary>
internal sealed record BoolValue(bool Value) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => Value ? "boolean true" : "boolean false";
}

/// <summary>A whole number.</summary>
internal sealed record IntegerValue(long Value) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => $"integer {Value.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>A number that is not a whole number within 64 bits, kept as its text.</summary>
internal sealed record NumberValue(string Text) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => $"number {Text}";
}

/// <summary>A string.</summary>
internal sealed record StringValue(string Value) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => Value.Length == 0
        ? "empty string"
        : Value.Length <= QuoteLimit ? $"string \"{Value}\"" : $"string \"{Value[..QuoteLimit]}…\"";
}

/// <summary>A list (JSON array or Parquet LIST).</summary>
internal sealed record ListValue(IReadOnlyList<DataValue> Items) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => Items.Count == 0 ? "empty list" : $"list of {Items.Count} items";
}

/// <summary>An object (JSON object or Parquet struct); a field given as null is present with <see cref="NullValue"/>.</summary>
internal sealed record ObjectValue(IReadOnlyDictionary<string, DataValue> Fields) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => "object";
}

/// <summary>A value of a kind no format uses (a timestamp, binary, a map …), described by <paramref name="Kind"/>.</summary>
internal sealed record OtherValue(string Kind) : DataValue
{
    /// <inheritdoc />
    public override string Describe() => Kind;
}

/// <summary>One row of a dataset file: where it is and its top-level fields.</summary>
internal sealed record SourceRecord(RowRef At, IReadOnlyDictionary<string, DataValue> Fields);
