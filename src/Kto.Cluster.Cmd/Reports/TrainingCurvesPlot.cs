using ScottPlot;
using ScottPlot.Plottables;
using SkiaSharp;

namespace Kto.Cluster.Cmd.Reports;

/// <summary>
/// PNG figures of KTO training curves from <c>metrics.jsonl</c> (see docs/training.md, "Metrics"): four panels
/// against <c>step</c> — loss; kl (and kl_raw); rewards/chosen with rewards/rejected; rewards/margins — under a
/// title and above a band of notes. A metric missing or <c>null</c> on a line leaves a gap in its curve.
/// </summary>
internal static class TrainingCurvesPlot
{
    /// <summary>Width of the figure in pixels.</summary>
    public const int Width = 1400;

    /// <summary>Height of the figure in pixels.</summary>
    public const int Height = 900;

    /// <summary>Space around and between the panels.</summary>
    private const float Margin = 10;

    /// <summary>Height of the title band (when there is a title).</summary>
    private const float TitleBandHeight = 48;

    /// <summary>Size of the figure title.</summary>
    private const float TitleFontSize = 24;

    /// <summary>Size of a note line.</summary>
    private const float NoteFontSize = 17;

    /// <summary>Distance between the baselines of two note lines.</summary>
    private const float NoteLineHeight = 25;

    /// <summary>Padding inside the notes band.</summary>
    private const float NotesPadding = 12;

    /// <summary>Note lines per column before a second column is used.</summary>
    private const int NotesPerColumn = 4;

    /// <summary>Columns of notes at most; notes beyond columns × <see cref="NotesPerColumn"/> are summarised.</summary>
    private const int MaxNoteColumns = 2;

    /// <summary>Size of a panel's title.</summary>
    private const float PanelTitleFontSize = 17;

    /// <summary>Size of axis labels.</summary>
    private const float AxisLabelFontSize = 14;

    /// <summary>Size of the "no values" message of an empty panel.</summary>
    private const float NoDataFontSize = 16;

    /// <summary>Size of legend text.</summary>
    private const float LegendFontSize = 13;

    /// <summary>Width of a curve.</summary>
    private const float CurveLineWidth = 2;

    /// <summary>Marker size on curves with few points (so each logged step is visible).</summary>
    private const float SparseMarkerSize = 4;

    /// <summary>Marker size of a point with no neighbour to join (an isolated value between gaps).</summary>
    private const float IsolatedMarkerSize = 6;

    /// <summary>Curves with at most this many points get markers.</summary>
    private const int SparsePointLimit = 60;

    /// <summary>Fraction of the step range added on each side of the x axis.</summary>
    private const double XPadFraction = 0.02;

    /// <summary>Free pixels wanted around a legend when judging whether it covers a curve.</summary>
    private const float LegendClearancePx = 6;

    /// <summary>Points sampled along each segment of a curve when judging where a legend covers it.</summary>
    private const int LegendSamplesPerSegment = 8;

    /// <summary>Largest fraction of a panel's height given up above the curves to make room for the legend.</summary>
    private const double MaxLegendHeadroom = 0.5;

    /// <summary>Where a legend may go, in order of preference.</summary>
    private static readonly Alignment[] LegendSpots =
    [
        Alignment.UpperRight, Alignment.UpperLeft, Alignment.LowerRight, Alignment.LowerLeft,
        Alignment.MiddleRight, Alignment.MiddleLeft, Alignment.UpperCenter, Alignment.LowerCenter,
    ];

    /// <summary>Ellipsis used when a note is too wide for its column.</summary>
    private const string Ellipsis = "…";

    /// <summary>Separates run name and curve in a comparison legend.</summary>
    private const string LegendSeparator = " · ";

    /// <summary>Colour of the title and notes.</summary>
    private static readonly SKColor TextColor = new(0x20, 0x20, 0x20);

    /// <summary>Background of the notes band.</summary>
    private static readonly SKColor NotesBackground = new(0xF3, 0xF4, 0xF6);

    /// <summary>Colour of the y = 0 reference line.</summary>
    private static readonly Color ZeroLineColor = Colors.Black.WithAlpha(0.35);

    /// <summary>Colour of the "no data" message in an empty panel.</summary>
    private static readonly Color NoDataColor = Colors.Gray;

    /// <summary>One colour per run in comparisons.</summary>
    private static readonly ScottPlot.Palettes.Category10 RunPalette = new();

    /// <summary>The four panels, in reading order (row by row).</summary>
    private static readonly PanelSpec[] Panels =
    [
        new("loss", false, [new CurveSpec("loss", "loss", Colors.C0), new CurveSpec("eval_loss", "eval_loss", Colors.C0, Eval: true)]),
        new("kl", false, [new CurveSpec("kl", "kl", Colors.C4), new CurveSpec("kl_raw", "kl_raw", Colors.C7), new CurveSpec("eval_kl", "eval_kl", Colors.C4, Eval: true)]),
        new("rewards", true, [new CurveSpec("rewards/chosen", "chosen", Colors.C2), new CurveSpec("rewards/rejected", "rejected", Colors.C3),
            new CurveSpec("eval_rewards/chosen", "eval chosen", Colors.C2, Eval: true), new CurveSpec("eval_rewards/rejected", "eval rejected", Colors.C3, Eval: true)]),
        new("rewards/margins", true, [new CurveSpec("rewards/margins", "margins", Colors.C1), new CurveSpec("eval_rewards/margins", "eval margins", Colors.C1, Eval: true)]),
    ];

    /// <summary>Panels per row.</summary>
    private const int GridColumns = 2;

    /// <summary>Every metric a panel draws (these must be numbers or null in the file).</summary>
    private static readonly string[] PlottedKeys = Panels.SelectMany(p => p.Curves).Select(c => c.Key).ToArray();

    /// <summary>
    /// Reads metrics.jsonl and writes a PNG (<see cref="Width"/>×<see cref="Height"/>) with panels: loss; kl (and
    /// kl_raw if present); rewards/chosen and rewards/rejected (same panel); rewards/margins — each against "step",
    /// plus the notes as text. Missing/null values are skipped (gaps), not plotted as 0.
    /// </summary>
    /// <exception cref="InvalidDataException">A malformed line (the message names file:line), or an empty file.</exception>
    /// <exception cref="FileNotFoundException">No metrics file.</exception>
    public static void Write(string metricsJsonlPath, string pngPath, CurveReport report)
    {
        MetricsTable table = MetricsTable.Read(metricsJsonlPath, PlottedKeys);
        Render([new Run(metricsJsonlPath, table)], comparison: false, report, pngPath); // one run: no legend names it
    }

    /// <summary>
    /// Several runs on the same axes (one colour per run, legend with the run names) — for comparing e.g. kto vs
    /// apo_zero_unpaired. Within a panel of two metrics the second is dashed.
    /// </summary>
    /// <exception cref="ArgumentException">No runs.</exception>
    /// <exception cref="InvalidDataException">A malformed line in any file (the message names file:line).</exception>
    /// <exception cref="FileNotFoundException">A metrics file is missing.</exception>
    public static void WriteComparison(IReadOnlyList<(string Name, string MetricsJsonlPath)> runs, string pngPath, CurveReport report)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to compare", nameof(runs));
        var read = runs.Select(r => new Run(r.Name, MetricsTable.Read(r.MetricsJsonlPath, PlottedKeys))).ToList();
        Render(read, comparison: true, report, pngPath);
    }

    private static void Render(IReadOnlyList<Run> runs, bool comparison, CurveReport report, string pngPath)
    {
        EmbeddedFont.EnsureRegistered();
        using SKSurface surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul))
            ?? throw new InvalidOperationException("could not create a drawing surface");
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);

        float gridTop = DrawTitle(canvas, report.Title);
        float gridBottom = DrawNotes(canvas, report.Notes);
        (double xMin, double xMax) = StepRange(runs);

        int rows = (Panels.Length + GridColumns - 1) / GridColumns;
        float cellWidth = (Width - Margin) / GridColumns;
        float cellHeight = (gridBottom - gridTop - Margin) / rows;
        for (int i = 0; i < Panels.Length; i++)
        {
            float left = Margin + (i % GridColumns) * cellWidth;
            float top = gridTop + Margin + (i / GridColumns) * cellHeight;
            var rect = new PixelRect(left, left + cellWidth - Margin, top + cellHeight - Margin, top);
            (Plot plot, List<Coordinates[]> lines) = BuildPanel(Panels[i], runs, comparison, xMin, xMax);
            using Plot disposing = plot;
            RenderInCell(plot, canvas, rect);
            // The first render measured the data area and the legend; move the legend off the curves and redraw.
            if (plot.Legend.IsVisible && PlaceLegend(plot, lines)) RenderInCell(plot, canvas, rect);
        }

        string? dir = Path.GetDirectoryName(Path.GetFullPath(pngPath));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        using SKImage image = surface.Snapshot();
        using SKData png = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("PNG encoding failed");
        using FileStream file = File.Create(pngPath);
        png.SaveTo(file);
    }

    /// <summary>Draws <paramref name="plot"/> into <paramref name="rect"/> only (ScottPlot clears its whole canvas first; the clip keeps that to the cell).</summary>
    private static void RenderInCell(Plot plot, SKCanvas canvas, PixelRect rect)
    {
        canvas.Save();
        canvas.ClipRect(new SKRect(rect.Left, rect.Top, rect.Right, rect.Bottom));
        plot.Render(canvas, rect);
        canvas.Restore();
    }

    /// <summary>A panel's plot and the lines drawn on it (for placing the legend).</summary>
    private static (Plot Plot, List<Coordinates[]> Lines) BuildPanel(PanelSpec panel, IReadOnlyList<Run> runs, bool comparison, double xMin, double xMax)
    {
        var plot = new Plot();
        var lines = new List<Coordinates[]>();
        var present = panel.Curves.Where(c => runs.Any(r => r.Table.Has(c.Key))).ToList();
        bool twoCurves = present.Count > 1;
        for (int r = 0; r < runs.Count; r++)
        {
            for (int c = 0; c < present.Count; c++)
            {
                CurveSpec curve = present[c];
                // One run: a colour per metric. Several: a colour per run, and the second metric of a panel dashed.
                Color color = comparison ? RunPalette.GetColor(r) : curve.Color;
                // Eval curves (from the eval lines) are dotted beside their training curve.
                LinePattern pattern = curve.Eval ? LinePattern.Dotted : comparison && c > 0 ? LinePattern.Dashed : LinePattern.Solid;
                string legend = comparison ? (twoCurves ? runs[r].Name + LegendSeparator + curve.Label : runs[r].Name) : curve.Label;
                lines.AddRange(AddCurve(plot, runs[r].Table, curve.Key, color, pattern, legend));
            }
        }

        string title = present.Count == 0 ? panel.Title : string.Join(", ", present.Select(c => c.Key));
        plot.Title(title, PanelTitleFontSize);
        plot.XLabel("step", AxisLabelFontSize);
        plot.Font.Set(EmbeddedFont.FamilyName);
        plot.Legend.FontName = EmbeddedFont.FamilyName;
        plot.Legend.FontSize = LegendFontSize;
        plot.Legend.IsVisible = comparison || twoCurves;
        plot.Legend.Alignment = Alignment.UpperRight;

        if (present.Count == 0)
        {
            Annotation note = plot.Add.Annotation("no values in " + (runs.Count == 1 ? "this run" : "these runs"), Alignment.MiddleCenter);
            note.LabelFontName = EmbeddedFont.FamilyName;
            note.LabelFontSize = NoDataFontSize;
            note.LabelFontColor = NoDataColor;
            note.LabelBackgroundColor = Colors.White;
            note.LabelBorderWidth = 0;
            note.LabelShadowColor = Colors.Transparent;
            plot.HideGrid();
        }
        else if (panel.ZeroLine)
        {
            HorizontalLine zero = plot.Add.HorizontalLine(0, 1, ZeroLineColor, LinePattern.Dotted);
            zero.ExcludeFromLegend = true;
        }

        plot.Axes.AutoScale();
        plot.Axes.SetLimitsX(xMin, xMax);
        return (plot, lines);
    }

    /// <summary>
    /// Puts the legend where it covers the fewest curve points, judged from the last render's data area and legend
    /// size; if every spot covers some, raises the top of the y axis so the curves sit below the legend. Returns
    /// whether anything changed.
    /// </summary>
    private static bool PlaceLegend(Plot plot, List<Coordinates[]> lines)
    {
        PixelRect data = plot.LastRender.DataRect;
        PixelSize legend = plot.Legend.LastRenderSize;
        if (data.Width <= 0 || data.Height <= 0 || legend.Width <= 0 || legend.Height <= 0) return false;
        double w = Math.Min(1, (legend.Width + 2 * LegendClearancePx) / data.Width);
        double h = Math.Min(1, (legend.Height + 2 * LegendClearancePx) / data.Height);
        AxisLimits limits = plot.Axes.GetLimits();
        var points = SamplePoints(lines, limits).ToList();

        Alignment best = LegendSpots[0];
        int bestCount = int.MaxValue;
        foreach (Alignment spot in LegendSpots)
        {
            (double x0, double y0) = SpotCorner(spot, w, h);
            int count = points.Count(p => p.X >= x0 && p.X <= x0 + w && p.Y >= y0 && p.Y <= y0 + h);
            if (count < bestCount)
            {
                best = spot;
                bestCount = count;
            }
        }
        if (bestCount > 0 && h < MaxLegendHeadroom)
        {
            // No free spot: make room above the curves instead.
            best = Alignment.UpperRight;
            plot.Axes.SetLimitsY(limits.Bottom, limits.Bottom + limits.VerticalSpan / (1 - h));
        }
        if (best == plot.Legend.Alignment && bestCount == 0) return false;
        plot.Legend.Alignment = best;
        return true;
    }

    /// <summary>Points along every line in axis fractions (0..1 inside the data area), several per segment.</summary>
    private static IEnumerable<(double X, double Y)> SamplePoints(List<Coordinates[]> lines, AxisLimits limits)
    {
        (double, double) Norm(double x, double y) =>
            ((x - limits.Left) / limits.HorizontalSpan, (y - limits.Bottom) / limits.VerticalSpan);
        foreach (Coordinates[] line in lines)
        {
            yield return Norm(line[0].X, line[0].Y);
            for (int k = 1; k < line.Length; k++)
            {
                for (int s = 1; s <= LegendSamplesPerSegment; s++)
                {
                    double t = (double)s / LegendSamplesPerSegment;
                    yield return Norm(line[k - 1].X + t * (line[k].X - line[k - 1].X), line[k - 1].Y + t * (line[k].Y - line[k - 1].Y));
                }
            }
        }
    }

    /// <summary>Lower-left corner, in axis fractions, of a legend of size <paramref name="w"/>×<paramref name="h"/> at <paramref name="spot"/>.</summary>
    private static (double X, double Y) SpotCorner(Alignment spot, double w, double h)
    {
        double x = spot switch
        {
            Alignment.UpperLeft or Alignment.MiddleLeft or Alignment.LowerLeft => 0,
            Alignment.UpperCenter or Alignment.MiddleCenter or Alignment.LowerCenter => (1 - w) / 2,
            _ => 1 - w,
        };
        double y = spot switch
        {
            Alignment.LowerLeft or Alignment.LowerCenter or Alignment.LowerRight => 0,
            Alignment.MiddleLeft or Alignment.MiddleCenter or Alignment.MiddleRight => (1 - h) / 2,
            _ => 1 - h,
        };
        return (x, y);
    }

    /// <summary>Adds one metric of one run, as one line per stretch of consecutive values (gaps stay gaps); returns the lines.</summary>
    private static List<Coordinates[]> AddCurve(Plot plot, MetricsTable table, string key, Color color, LinePattern pattern, string legend)
    {
        var lines = new List<Coordinates[]>();
        IReadOnlyList<int> rows = table.Rows(key); // the lines holding the key: others (another kind of line) do not break the curve
        IReadOnlyList<double> steps = [.. rows.Select(k => table.Steps[k])];
        IReadOnlyList<double> values = [.. rows.Select(k => table.Column(key)[k])];
        int points = values.Count(double.IsFinite);
        bool labelled = false;
        int i = 0;
        while (i < values.Count)
        {
            if (!double.IsFinite(values[i]))
            {
                i++;
                continue;
            }
            int start = i;
            while (i < values.Count && double.IsFinite(values[i])) i++;
            Coordinates[] stretch = Enumerable.Range(start, i - start).Select(k => new Coordinates(steps[k], values[k])).ToArray();
            lines.Add(stretch);
            Scatter line = plot.Add.Scatter(stretch, color);
            line.LineWidth = CurveLineWidth;
            line.LinePattern = pattern;
            line.MarkerSize = stretch.Length == 1 ? IsolatedMarkerSize : points <= SparsePointLimit ? SparseMarkerSize : 0;
            if (!labelled)
            {
                line.LegendText = legend;
                labelled = true;
            }
        }
        return lines;
    }

    /// <summary>The x range shared by all panels: every step of every run, padded a little.</summary>
    private static (double Min, double Max) StepRange(IReadOnlyList<Run> runs)
    {
        double min = runs.Min(r => r.Table.Steps.Min());
        double max = runs.Max(r => r.Table.Steps.Max());
        if (max <= min)
        {
            min -= 1;
            max += 1;
        }
        double pad = (max - min) * XPadFraction;
        return (min - pad, max + pad);
    }

    /// <summary>Draws the title band; returns where the panels may start.</summary>
    private static float DrawTitle(SKCanvas canvas, string title)
    {
        if (string.IsNullOrWhiteSpace(title)) return 0;
        using SKTypeface typeface = EmbeddedFont.Create(bold: true);
        using var font = new SKFont(typeface, TitleFontSize);
        using var paint = new SKPaint { Color = TextColor, IsAntialias = true };
        string text = FitWidth(title.Trim(), font, Width - 2 * Margin);
        canvas.DrawText(text, Width / 2f, (TitleBandHeight + TitleFontSize) / 2f, SKTextAlign.Center, font, paint);
        return TitleBandHeight;
    }

    /// <summary>Draws the notes band along the bottom; returns where the panels must end.</summary>
    private static float DrawNotes(SKCanvas canvas, IReadOnlyList<string> notes)
    {
        var lines = notes.Select(n => n.ReplaceLineEndings(" ").Trim()).Where(n => n.Length > 0).ToList();
        if (lines.Count == 0) return Height;

        int capacity = NotesPerColumn * MaxNoteColumns;
        if (lines.Count > capacity)
        {
            int hidden = lines.Count - capacity + 1;
            lines = [.. lines.Take(capacity - 1), $"{Ellipsis} and {hidden} more note(s)"];
        }
        int columns = lines.Count > NotesPerColumn ? MaxNoteColumns : 1;
        int rows = (lines.Count + columns - 1) / columns;
        float bandHeight = rows * NoteLineHeight + 2 * NotesPadding;
        float bandTop = Height - Margin - bandHeight;

        using (var background = new SKPaint { Color = NotesBackground, IsAntialias = true })
            canvas.DrawRect(new SKRect(Margin, bandTop, Width - Margin, Height - Margin), background);

        using SKTypeface typeface = EmbeddedFont.Create(bold: false);
        using var font = new SKFont(typeface, NoteFontSize);
        using var paint = new SKPaint { Color = TextColor, IsAntialias = true };
        float columnWidth = (Width - 2 * Margin - 2 * NotesPadding) / columns;
        for (int i = 0; i < lines.Count; i++)
        {
            int column = i / rows;
            int row = i % rows;
            float x = Margin + NotesPadding + column * columnWidth;
            float baseline = bandTop + NotesPadding + row * NoteLineHeight + NoteFontSize;
            canvas.DrawText(FitWidth(lines[i], font, columnWidth - NotesPadding), x, baseline, SKTextAlign.Left, font, paint);
        }
        return bandTop;
    }

    /// <summary><paramref name="text"/>, cut and ended with an ellipsis if wider than <paramref name="width"/>.</summary>
    private static string FitWidth(string text, SKFont font, float width)
    {
        if (font.MeasureText(text) <= width) return text;
        int keep = text.Length;
        while (keep > 0 && font.MeasureText(text[..keep] + Ellipsis) > width) keep--;
        return text[..keep].TrimEnd() + Ellipsis;
    }

    /// <summary>One run to draw.</summary>
    private sealed record Run(string Name, MetricsTable Table);

    /// <summary>One metric in a panel: its key, its legend label, and its colour when one run is drawn.</summary>
    private sealed record CurveSpec(string Key, string Label, Color Color, bool Eval = false);

    /// <summary>One panel: its title when no metric of it has values, whether to draw y = 0, and its metrics.</summary>
    private sealed record PanelSpec(string Title, bool ZeroLine, CurveSpec[] Curves);
}
