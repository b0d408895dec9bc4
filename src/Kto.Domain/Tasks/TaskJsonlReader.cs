using Kto.Domain.Data;

namespace Kto.Domain.Tasks;

/// <summary>
/// Reads the JSONL files of the task loop (prompts, samples) with the dataset loader's rules: one object per line,
/// blank lines skipped, strict UTF-8, fields other than the ones read ignored. Problems are
/// <see cref="DataException"/>s naming the file and line (<c>prompts.jsonl:line 3: field "prompt": expected a
/// string, found integer 5</c>).
/// </summary>
public static class TaskJsonlReader
{
    /// <summary>The <c>"prompt"</c> string of every line of <paramref name="path"/>.</summary>
    /// <exception cref="DataException">The file is missing, empty or has a bad line.</exception>
    public static IReadOnlyList<PromptRow> ReadPrompts(string path)
        => Read(path, "prompts", row => new PromptRow(Text(row, "prompt"), row.At.Number));

    /// <summary>The <c>"prompt"</c> and <c>"completion"</c> strings of every line of <paramref name="path"/>.</summary>
    /// <exception cref="DataException">The file is missing, empty or has a bad line.</exception>
    public static IReadOnlyList<Sample> ReadSamples(string path)
        => Read(path, "samples", row => new Sample(Text(row, "prompt"), Text(row, "completion")));

    private static List<T> Read<T>(string path, string what, Func<SourceRecord, T> parse)
    {
        if (!File.Exists(path)) throw DataErrors.File(path, "file not found");
        var rows = JsonlRows.Read(path).Select(parse).ToList();
        if (rows.Count == 0) throw DataErrors.File(path, $"no {what}");
        return rows;
    }

    private static string Text(SourceRecord row, string field) => row.Fields.TryGetValue(field, out DataValue? v)
        ? v is StringValue s ? s.Value : throw DataErrors.Field(row.At, field, "a string", v.Describe())
        : throw DataErrors.Field(row.At, field, "a string", "no such field");
}
