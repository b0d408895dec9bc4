using System.Text;
using Parquet;
using Parquet.Serialization;

namespace Kto.Domain.Tests.Data;

/// <summary>A temporary folder for dataset files, deleted on dispose.</summary>
public sealed class TempDataDir : IDisposable
{
    public TempDataDir()
    {
        Root = Path.Combine(Path.GetTempPath(), "kto-data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public string PathOf(string name) => Path.Combine(Root, name);

    /// <summary>Writes <paramref name="lines"/> joined by LF (with a final LF).</summary>
    public string Jsonl(string name, params string[] lines) => Text(name, string.Concat(lines.Select(l => l + "\n")));

    public string Text(string name, string content)
    {
        string path = PathOf(name);
        File.WriteAllText(path, content, new UTF8Encoding(false));
        return path;
    }

    public string Bytes(string name, byte[] content)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>Writes <paramref name="rows"/> with Parquet.Net's class serializer (lists as LIST, messages as structs).</summary>
    public string Parquet<T>(string name, IEnumerable<T> rows, int? rowGroupSize = null)
    {
        string path = PathOf(name);
        using (FileStream stream = File.Create(path))
            ParquetSerializer.SerializeAsync(rows, stream, new ParquetOptions { RowGroupSize = rowGroupSize }).GetAwaiter().GetResult();
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
    }
}
