using System.Globalization;
using System.Text.Json;
using ScottPlot;

namespace Kto.Cluster.Cmd.Reports;

/// <summary>
/// <c>kto bench plot</c>: step time against link rate from <c>kto bench cluster</c> results run in the network rig
/// (scripts/rig-sweep.sh writes them, one JSON line each, tagged with <c>link_mbit</c> and <c>loss_pct</c>).
/// </summary>
internal static class LinkSweepPlot
{
    /// <summary>One measured point.</summary>
    internal sealed record Point(double LinkMbit, bool Lora, bool FullDeterminism, int Trainers, int LossPct, double OneStepS, double ManyStepS);

    /// <summary>Reads the results (lines without <c>link_mbit</c> are an error: they were not run in the rig).</summary>
    /// <exception cref="InvalidDataException">A line that is not a tagged bench cluster result (file:line named).</exception>
    public static IReadOnlyList<Point> Read(string path)
    {
        var points = new List<Point>();
        int n = 0;
        foreach (string line in File.ReadLines(path))
        {
            n++;
            if (line.Trim().Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                JsonElement e = doc.RootElement;
                if (!e.TryGetProperty("bench", out var bench) || bench.GetString() != "cluster")
                    throw new InvalidDataException("expected a kto bench cluster result (\"bench\": \"cluster\")");
                if (!e.TryGetProperty("link_mbit", out var link))
                    throw new InvalidDataException("no \"link_mbit\": run it through scripts/rig-sweep.sh");
                int trainers = e.TryGetProperty("trainers", out var t) ? t.GetInt32() : 2;
                points.Add(new Point(link.GetDouble(), e.GetProperty("lora").GetBoolean(), e.GetProperty("full_determinism").GetBoolean(), trainers,
                    e.TryGetProperty("loss_pct", out var loss) ? loss.GetInt32() : 0,
                    e.GetProperty("trainers_1_step_s").GetDouble(), e.GetProperty($"trainers_{trainers}_step_s").GetDouble()));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
            {
                throw new InvalidDataException($"{path}:{n}: {ex.Message}", ex);
            }
        }
        if (points.Count == 0) throw new InvalidDataException($"{path}: no results");
        return points;
    }

    /// <summary>
    /// Writes a PNG: step time (s) against link rate (Mbit/s, log scale), one line per (mode, trainers) for the lossless
    /// points, the 1-trainer step of each mode as a dashed reference (it crosses no link).
    /// </summary>
    public static void Write(IReadOnlyList<Point> points, string pngPath, string title)
    {
        EmbeddedFont.EnsureRegistered();
        using var plot = new Plot();
        plot.Font.Set(EmbeddedFont.FamilyName);
        plot.Title(title);
        plot.XLabel("link rate (Mbit/s, log scale)");
        plot.YLabel("step time (s)");
        var palette = new ScottPlot.Palettes.Category10();
        int colour = 0;
        foreach (var group in points.Where(p => p.LossPct == 0).GroupBy(p => (p.Lora, p.FullDeterminism)).OrderBy(g => g.Key.Lora))
        {
            string mode = (group.Key.Lora ? "LoRA" : "full") + (group.Key.FullDeterminism ? ", full_determinism" : "");
            Color c = palette.GetColor(colour++);
            foreach (var byTrainers in group.GroupBy(p => p.Trainers).OrderBy(g => g.Key))
            {
                var sorted = byTrainers.OrderBy(p => p.LinkMbit).ToList();
                var line = plot.Add.Scatter(sorted.Select(p => Math.Log10(p.LinkMbit)).ToArray(), sorted.Select(p => p.ManyStepS).ToArray(), c);
                line.LegendText = $"{mode}: {byTrainers.Key} trainers";
                line.LineWidth = 2;
                line.MarkerSize = 7;
                if (byTrainers.Key != 2) line.LinePattern = LinePattern.DenselyDashed;
            }
            double one = group.Average(p => p.OneStepS);
            var reference = plot.Add.HorizontalLine(one, 1.5f, c, LinePattern.Dotted);
            reference.LegendText = $"{mode}: 1 trainer ({one:0.00} s)";
        }
        double[] ticks = [.. points.Select(p => p.LinkMbit).Distinct().Order()];
        plot.Axes.Bottom.SetTicks([.. ticks.Select(Math.Log10)], [.. ticks.Select(t => t >= 1000 ? (t / 1000).ToString("0.#", CultureInfo.InvariantCulture) + " G" : t.ToString("0", CultureInfo.InvariantCulture) + " M")]);
        plot.Axes.SetLimitsY(0, points.Max(p => Math.Max(p.ManyStepS, p.OneStepS)) * 1.15);
        plot.ShowLegend(Alignment.UpperRight);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(pngPath));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        plot.SavePng(pngPath, 1100, 650);
    }
}
