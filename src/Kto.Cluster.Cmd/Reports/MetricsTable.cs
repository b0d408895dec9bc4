using System.Text.Json;

namespace Kto.Cluster.Cmd.Reports;

/// <summary>
/// A <c>metrics.jsonl</c> read for plotting: the <c>step</c> of every line and, per metric name, the value on each
/// line, <see cref="double.NaN"/> where the line has no such key or it is <c>null</c> (JSON cannot hold a NaN, so
/// NaN only ever means "missing").
/// </summary>
internal sealed class MetricsTable
{
    private readonly Dictionary<string, double[]> _columns;
    private readonly Dictionary<string, List<int>> _rows;

    private MetricsTable(string path, double[] steps, Dictionary<string, double[]> columns, Dictionary<string, List<int>> rows)
    {
        Path = path;
        Steps = steps;
        _columns = columns;
        _rows = rows;
    }

    /// <summary>
    /// The lines that hold <paramref name="name"/> (a number or null), in file order: a curve runs through these only,
    /// so lines of another kind (eval lines between training lines) do not break it; a null still does.
    /// </summary>
    public IReadOnlyList<int> Rows(string name) => _rows.TryGetValue(name, out List<int>? rows) ? rows : [];

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary>The <c>step</c> of each line, in file order.</summary>
    public IReadOnlyList<double> Steps { get; }

    /// <summary>The values of <paramref name="name"/> aligned with <see cref="Steps"/> (NaN = missing); all NaN when no line has it.</summary>
    public IReadOnlyList<double> Column(string name) =>
        _columns.TryGetValue(name, out double[]? values) ? values : Enumerable.Repeat(double.NaN, Steps.Count).ToArray();

    /// <summary>Whether at least one line has a value for <paramref name="name"/>.</summary>
    public bool Has(string name) => _columns.TryGetValue(name, out double[]? values) && values.Any(double.IsFinite);

    /// <summary>
    /// Reads <paramref name="path"/>. Blank lines are skipped. Every other line must be a JSON object with a numeric
    /// <c>step</c>; keys of <paramref name="numericKeys"/> must be numbers or <c>null</c> where present; other keys
    /// that are not numbers are ignored.
    /// </summary>
    /// <exception cref="InvalidDataException">A malformed line (the message starts with <c>file:line:</c>), or no line at all.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static MetricsTable Read(string path, IReadOnlyCollection<string> numericKeys)
    {
        var steps = new List<double>();
        var columns = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var rows = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{path}:{lineNo}";
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{where}: not valid JSON ({e.Message})", e);
            }
            using (doc)
            {
                JsonElement root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"{where}: expected a JSON object, got {root.ValueKind}");
                if (!root.TryGetProperty("step", out JsonElement stepElement) || stepElement.ValueKind != JsonValueKind.Number
                    || !stepElement.TryGetDouble(out double step) || !double.IsFinite(step))
                    throw new InvalidDataException($"{where}: \"step\" is missing or not a number");

                int row = steps.Count;
                steps.Add(step);
                foreach (JsonProperty p in root.EnumerateObject())
                {
                    double value;
                    if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out double v) && double.IsFinite(v)) value = v;
                    else if (p.Value.ValueKind == JsonValueKind.Null) value = double.NaN;
                    else if (numericKeys.Contains(p.Name))
                        throw new InvalidDataException($"{where}: \"{p.Name}\" must be a number or null, got {p.Value.GetRawText()}");
                    else continue;

                    if (!rows.TryGetValue(p.Name, out List<int>? holding)) rows[p.Name] = holding = [];
                    if (holding.Count == 0 || holding[^1] != row) holding.Add(row);
                    if (!columns.TryGetValue(p.Name, out List<double>? column))
                    {
                        column = new List<double>(Enumerable.Repeat(double.NaN, row));
                        columns[p.Name] = column;
                    }
                    if (column.Count > row)
                    {
                        column[row] = value; // a key repeated within the line: the last one wins, as in most JSON readers
                        continue;
                    }
                    while (column.Count < row) column.Add(double.NaN);
                    column.Add(value);
                }
            }
        }
        if (steps.Count == 0) throw new InvalidDataException($"{path}: no metrics lines");
        var padded = columns.ToDictionary(c => c.Key, c =>
        {
            while (c.Value.Count < steps.Count) c.Value.Add(double.NaN);
            return c.Value.ToArray();
        }, StringComparer.Ordinal);
        return new MetricsTable(path, steps.ToArray(), padded, rows);
    }
}
