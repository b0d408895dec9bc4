using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kto.Domain.Training;

/// <summary>
/// <c>metrics.jsonl</c>: one JSON object per logging step with TRL's metric names, appended and flushed line by
/// line. On resume, lines past the checkpoint's step are dropped first, so a resumed run's log reads like an
/// uninterrupted one.
/// </summary>
public sealed class MetricsLog
{
    /// <summary>File name inside output_dir.</summary>
    public const string FileName = "metrics.jsonl";

    private readonly string _path;

    /// <summary>Opens (creating if needed) the log in <paramref name="outputDir"/>.</summary>
    public MetricsLog(string outputDir) => _path = Path.Combine(outputDir, FileName);

    /// <summary>The file's path.</summary>
    public string FilePath => _path;

    /// <summary>Keeps only lines whose step is at most <paramref name="step"/>.</summary>
    public void TruncateAfter(int step)
    {
        if (!File.Exists(_path)) return;
        var kept = File.ReadAllLines(_path).Where(l => StepOf(l) is int s && s <= step).ToArray();
        Checkpoints.AtomicFile.WriteText(_path, kept.Length == 0 ? "" : string.Join('\n', kept) + "\n");
    }

    /// <summary>The step of the last complete training line, or 0 when there is none (lines cut short by a crash, and evaluation lines, are skipped).</summary>
    public int LastStep() => File.Exists(_path) ? File.ReadLines(_path).Where(l => !IsEvaluation(l)).Select(StepOf).Max() ?? 0 : 0;

    /// <summary>The steps of the complete evaluation lines (<c>eval_loss</c>) in the file.</summary>
    public IReadOnlySet<int> EvaluatedSteps() => File.Exists(_path)
        ? File.ReadLines(_path).Where(IsEvaluation).Select(StepOf).OfType<int>().ToHashSet()
        : new HashSet<int>();

    private static bool IsEvaluation(string line) => line.Contains("\"eval_loss\"", StringComparison.Ordinal);

    /// <summary>The "step" of a line, or null for a line cut short by a crash (or not ours).</summary>
    private static int? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.GetProperty("step").GetInt32();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Appends one line: the step, the epoch, then the metrics in the given order. The line is written with one call
    /// and flushed to disk; if that fails (a full disk) the file is cut back to its length before, so it never ends
    /// with part of a line.
    /// </summary>
    /// <exception cref="IOException">The line could not be written; the file is as it was (if cutting back worked too).</exception>
    public void Append(int step, double epoch, IEnumerable<KeyValuePair<string, double>> metrics)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{{\"step\":{step},\"epoch\":{Num(epoch)}");
        foreach (var (k, v) in metrics) sb.Append(CultureInfo.InvariantCulture, $",\"{k}\":{Num(v)}");
        sb.Append("}\n");
        byte[] line = Encoding.UTF8.GetBytes(sb.ToString());
        using var file = new FileStream(_path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        DropFragment(file); // a line an earlier failure could not cut back
        long before = file.Length;
        file.Position = before;
        try
        {
            file.Write(line);
            file.Flush(flushToDisk: true);
        }
        catch (IOException)
        {
            try
            {
                file.SetLength(before);
            }
            catch (IOException)
            {
                // the partial line is dropped by the next TruncateAfter
            }
            throw;
        }
    }

    /// <summary>Cuts the file back to just after its last newline, if it ends with part of a line.</summary>
    private static void DropFragment(FileStream file)
    {
        long length = file.Length;
        if (length == 0) return;
        var one = new byte[1];
        long end = length;
        while (end > 0)
        {
            file.Position = end - 1;
            file.ReadExactly(one);
            if (one[0] == (byte)'\n') break;
            end--;
        }
        if (end != length) file.SetLength(end);
    }

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";
}
