namespace Kto.Domain.Data;

/// <summary>Builds the <see cref="DataException"/> messages, so every error reads the same way.</summary>
internal static class DataErrors
{
    /// <summary>A field of a row that is not what the format needs.</summary>
    public static DataException Field(RowRef at, string field, string expected, string found) =>
        new($"{at}: field \"{field}\": expected {expected}, found {found}");

    /// <summary>A row that cannot be read at all.</summary>
    public static DataException Row(RowRef at, string expected, string found, Exception? inner = null) =>
        inner is null ? new($"{at}: expected {expected}, found {found}") : new($"{at}: expected {expected}, found {found}", inner);

    /// <summary>A problem with the whole file.</summary>
    public static DataException File(string file, string problem, Exception? inner = null) =>
        inner is null ? new($"{file}: {problem}") : new($"{file}: {problem}", inner);
}
