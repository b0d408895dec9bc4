using Parquet;
using Parquet.Schema;

namespace Kto.Domain.Data;

/// <summary>
/// Reads a Parquet file as rows, one row group at a time, decoding only the top-level columns a format can use.
/// Row numbers are 1-based and run on across row groups.
/// </summary>
/// <remarks>
/// Parquet.Net reads asynchronously; each step runs on the thread pool and is waited for, so that blocking on it
/// cannot deadlock a caller that has a synchronization context.
/// </remarks>
internal static class ParquetRows
{
    /// <summary>The rows of <paramref name="path"/> with the columns named in <paramref name="columns"/> that it has.</summary>
    public static IEnumerable<SourceRecord> Read(string path, IReadOnlySet<string> columns)
    {
        ParquetReader reader = Open(path);
        try
        {
            Field[] fields = [.. reader.Schema.Fields.Where(f => columns.Contains(f.Name))];
            int number = 0;
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                ParquetRowGroupReader group = reader.OpenRowGroupReader(g);
                int count = checked((int)group.RowCount);
                DataValue[][] cells = [.. fields.Select(f => ReadColumn(path, group, g, f, count))];
                for (int r = 0; r < count; r++)
                {
                    var row = new Dictionary<string, DataValue>(fields.Length, StringComparer.Ordinal);
                    for (int f = 0; f < fields.Length; f++) row[fields[f].Name] = cells[f][r];
                    yield return new SourceRecord(new RowRef(path, RowRef.Row, ++number), row);
                }
            }
        }
        finally
        {
            Task.Run(async () => await reader.DisposeAsync().ConfigureAwait(false)).GetAwaiter().GetResult();
        }
    }

    private static ParquetReader Open(string path)
    {
        try
        {
            return Task.Run(() => ParquetReader.CreateAsync(path)).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            throw DataErrors.File(path, $"not a readable Parquet file ({e.Message})", e);
        }
    }

    private static DataValue[] ReadColumn(string path, ParquetRowGroupReader group, int groupIndex, Field field, int count)
    {
        try
        {
            return Task.Run(() => ParquetColumns.ReadAsync(group, field, count)).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            throw DataErrors.File(path, $"column \"{field.Name}\" of row group {groupIndex} could not be read ({e.Message})", e);
        }
    }
}
