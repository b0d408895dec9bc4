using Parquet;
using Parquet.Schema;

namespace Kto.Domain.Data;

/// <summary>
/// Reads a Parquet file as rows, only the top-level columns a format can use (others are never decoded). Row numbers
/// are 1-based and run on across row groups.
/// </summary>
internal static class ParquetRows
{
    /// <summary>The rows of <paramref name="path"/> with the columns named in <paramref name="columns"/> that it has.</summary>
    /// <remarks>Parquet.Net reads asynchronously; the read runs on the thread pool so that blocking on it cannot
    /// deadlock a caller that has a synchronization context.</remarks>
    public static IReadOnlyList<SourceRecord> Read(string path, IReadOnlySet<string> columns) =>
        Task.Run(() => ReadAsync(path, columns)).GetAwaiter().GetResult();

    private static async Task<IReadOnlyList<SourceRecord>> ReadAsync(string path, IReadOnlySet<string> columns)
    {
        ParquetReader reader;
        try
        {
            reader = await ParquetReader.CreateAsync(path).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not DataException)
        {
            throw DataErrors.File(path, $"not a readable Parquet file ({e.Message})", e);
        }
        await using (reader.ConfigureAwait(false))
        {
            Field[] fields = [.. reader.Schema.Fields.Where(f => columns.Contains(f.Name))];
            var rows = new List<SourceRecord>();
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                ParquetRowGroupReader group = reader.OpenRowGroupReader(g);
                int count = checked((int)group.RowCount);
                var cells = new DataValue[fields.Length][];
                for (int f = 0; f < fields.Length; f++)
                {
                    try
                    {
                        cells[f] = await ParquetColumns.ReadAsync(group, fields[f], count).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not DataException)
                    {
                        throw DataErrors.File(path, $"column \"{fields[f].Name}\" of row group {g} could not be read ({e.Message})", e);
                    }
                }
                for (int r = 0; r < count; r++)
                {
                    var row = new Dictionary<string, DataValue>(fields.Length);
                    for (int f = 0; f < fields.Length; f++) row[fields[f].Name] = cells[f][r];
                    rows.Add(new SourceRecord(new RowRef(path, RowRef.Row, rows.Count + 1), row));
                }
            }
            return rows;
        }
    }
}
