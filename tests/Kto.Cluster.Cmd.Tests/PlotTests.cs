using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Kto.Cluster.Cmd.Reports;
using SkiaSharp;

namespace Kto.Cluster.Cmd.Tests;

public sealed class PlotTests : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>ScottPlot's Category10 blue and orange: loss / first run, and margins / second run.</summary>
    private static readonly SKColor Blue = new(0x1F, 0x77, 0xB4);
    private static readonly SKColor Orange = new(0xFF, 0x7F, 0x0E);

    /// <summary>Category10 green and red: rewards/chosen and rewards/rejected of a single run.</summary>
    private static readonly SKColor Green = new(0x2C, 0xA0, 0x2C);
    private static readonly SKColor Red = new(0xD6, 0x27, 0x28);

    private readonly string _dir = Directory.CreateTempSubdirectory("kto-plot-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A metrics.jsonl as the trainer writes it, with a null loss and windows missing a class.</summary>
    private string WriteMetrics(string name, int lines, double speed, bool withKlRaw = true)
    {
        var sb = new StringBuilder();
        for (int i = 1; i <= lines; i++)
        {
            int step = i * 10;
            double loss = 0.7 * Math.Exp(-step * speed / 150) + 0.05;
            double chosen = 0.8 * (1 - Math.Exp(-step * speed / 100));
            double rejected = -1.1 * (1 - Math.Exp(-step * speed / 100));
            sb.Append(CultureInfo.InvariantCulture, $"{{\"step\":{step},\"epoch\":{step / 100.0},");
            sb.Append(i == lines / 2 ? "\"loss\":null," : string.Create(CultureInfo.InvariantCulture, $"\"loss\":{loss},"));
            sb.Append(CultureInfo.InvariantCulture, $"\"kl\":{0.2 * (1 - Math.Exp(-step / 200.0))}");
            if (withKlRaw) sb.Append(CultureInfo.InvariantCulture, $",\"kl_raw\":{0.2 * (1 - Math.Exp(-step / 200.0)) - 0.01}");
            bool hasChosen = i % 7 != 0, hasRejected = i % 11 != 0;
            if (hasChosen) sb.Append(CultureInfo.InvariantCulture, $",\"rewards/chosen\":{chosen}");
            if (hasRejected) sb.Append(CultureInfo.InvariantCulture, $",\"rewards/rejected\":{rejected}");
            if (hasChosen && hasRejected) sb.Append(CultureInfo.InvariantCulture, $",\"rewards/margins\":{chosen - rejected}");
            sb.Append(",\"learning_rate\":5e-05}\n");
        }
        string dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "metrics.jsonl");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    /// <summary>Width and height from the IHDR chunk, read by hand.</summary>
    private static (int Width, int Height) PngSize(byte[] png)
    {
        Assert.True(png.AsSpan(0, PngSignature.Length).SequenceEqual(PngSignature), "not a PNG signature");
        Assert.Equal(13, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(8, 4)));
        Assert.Equal("IHDR", Encoding.ASCII.GetString(png, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));
    }

    private static int CountNear(SKBitmap bitmap, SKColor target, int tolerance, int yFrom = 0, int yTo = int.MaxValue)
    {
        int n = 0;
        for (int y = yFrom; y < Math.Min(yTo, bitmap.Height); y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                SKColor c = bitmap.GetPixel(x, y);
                if (Math.Abs(c.Red - target.Red) <= tolerance && Math.Abs(c.Green - target.Green) <= tolerance && Math.Abs(c.Blue - target.Blue) <= tolerance) n++;
            }
        }
        return n;
    }

    private static int CountDark(SKBitmap bitmap, int yFrom, int yTo) => CountNear(bitmap, SKColors.Black, 90, yFrom, yTo);

    private static SKBitmap Decode(string path) => SKBitmap.Decode(path) ?? throw new InvalidOperationException("PNG did not decode");

    [Fact]
    public void WriteMakesAPngOfTheFigureSizeWithCurvesOnIt()
    {
        string metrics = WriteMetrics("kto", 40, 1.0);
        string png = Path.Combine(_dir, "out", "curves.png");
        TrainingCurvesPlot.Write(metrics, png, new CurveReport("kto on tiny", ["greedy accuracy 52.0% → 91.5%", "β = 0.1"]));

        byte[] bytes = File.ReadAllBytes(png);
        Assert.Equal((TrainingCurvesPlot.Width, TrainingCurvesPlot.Height), PngSize(bytes));
        Assert.True(bytes.Length > 20_000, $"only {bytes.Length} bytes: is the figure blank?");

        using SKBitmap bitmap = Decode(png);
        Assert.Equal(TrainingCurvesPlot.Width, bitmap.Width);
        var distinct = new HashSet<SKColor>();
        for (int y = 0; y < bitmap.Height; y += 3)
            for (int x = 0; x < bitmap.Width; x += 3)
                distinct.Add(bitmap.GetPixel(x, y));
        Assert.True(distinct.Count > 50, $"only {distinct.Count} distinct colours");
        Assert.True(CountNear(bitmap, Blue, 40) > 200, "no loss curve (blue)");
        Assert.True(CountNear(bitmap, Orange, 40) > 200, "no margins curve (orange)");
        Assert.True(CountNear(bitmap, Green, 40) > 200, "no rewards/chosen curve (green)");
        Assert.True(CountNear(bitmap, Red, 40) > 200, "no rewards/rejected curve (red)");
    }

    [Fact]
    public void AllTextUsesTheEmbeddedFont()
    {
        using (SKTypeface typeface = EmbeddedFont.Create(bold: false))
        {
            Assert.Equal("DejaVu Sans", typeface.FamilyName);
            Assert.True(typeface.GlyphCount > 1000);
            Assert.True(typeface.ContainsGlyphs("β→%…·"));
        }
        using (SKTypeface bold = EmbeddedFont.Create(bold: true))
            Assert.True(bold.IsBold);

        string metrics = WriteMetrics("kto", 20, 1.0);
        string with = Path.Combine(_dir, "with.png");
        TrainingCurvesPlot.Write(metrics, with, new CurveReport("A title", ["a note"]));

        // ScottPlot's own text (panel titles, ticks, legends) resolves to the embedded faces, not to system fonts,
        // so it renders on a machine with no fonts installed.
        Assert.Equal(EmbeddedFont.FamilyName, ScottPlot.Fonts.Default);
        Assert.Equal("DejaVu Sans", ScottPlot.Fonts.GetTypeface(EmbeddedFont.FamilyName, bold: false, italic: false).FamilyName);
        Assert.True(ScottPlot.Fonts.GetTypeface(EmbeddedFont.FamilyName, bold: true, italic: false).IsBold);

        using SKBitmap a = Decode(with);
        const int TitleBand = 40; // the panels start below the title band
        Assert.True(CountDark(a, 0, TitleBand) > 100, "the title was not drawn");
        Assert.True(CountDark(a, a.Height - 40, a.Height) > 50, "the note was not drawn");
    }

    [Fact]
    public void WriteComparisonDrawsEachRunInItsOwnColour()
    {
        string kto = WriteMetrics("kto", 30, 1.0);
        string apo = WriteMetrics("apo_zero_unpaired", 25, 0.6, withKlRaw: false);
        string png = Path.Combine(_dir, "compare.png");
        TrainingCurvesPlot.WriteComparison([("kto", kto), ("apo_zero_unpaired", apo)], png,
            new CurveReport("kto vs apo_zero_unpaired", ["kto: 52.0% → 91.5%", "apo_zero_unpaired: 52.0% → 84.0%"]));

        byte[] bytes = File.ReadAllBytes(png);
        Assert.Equal((TrainingCurvesPlot.Width, TrainingCurvesPlot.Height), PngSize(bytes));
        using SKBitmap bitmap = Decode(png);
        Assert.True(CountNear(bitmap, Blue, 40) > 300, "first run (blue) missing");
        Assert.True(CountNear(bitmap, Orange, 40) > 300, "second run (orange) missing");
        // Colours belong to runs now, not to metrics: no green chosen or red rejected curve.
        Assert.True(CountNear(bitmap, Green, 40) < 20, "a per-metric colour (green) in a comparison");
        Assert.True(CountNear(bitmap, Red, 40) < 20, "a per-metric colour (red) in a comparison");
    }

    [Fact]
    public void MissingAndNullValuesAreGapsNotZeros()
    {
        string path = Path.Combine(_dir, "metrics.jsonl");
        File.WriteAllText(path,
            "{\"step\":1,\"loss\":0.5,\"rewards/chosen\":0.1}\n" +
            "{\"step\":2,\"loss\":null,\"rewards/rejected\":-0.2}\n" +
            "\n" +
            "{\"step\":3,\"loss\":0.25,\"rewards/chosen\":0.3,\"rewards/rejected\":-0.4,\"rewards/margins\":0.7,\"note\":\"text is ignored\"}\n");
        MetricsTable table = MetricsTable.Read(path, ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins"]);
        Assert.Equal(new[] { 1.0, 2.0, 3.0 }, table.Steps);
        Assert.Equal(new[] { 0.5, double.NaN, 0.25 }, table.Column("loss"));
        Assert.Equal(new[] { 0.1, double.NaN, 0.3 }, table.Column("rewards/chosen"));
        Assert.Equal(new[] { double.NaN, -0.2, -0.4 }, table.Column("rewards/rejected"));
        Assert.Equal(new[] { double.NaN, double.NaN, 0.7 }, table.Column("rewards/margins"));
        Assert.True(table.Has("loss"));
        Assert.False(table.Has("kl"));
        Assert.All(table.Column("kl"), v => Assert.True(double.IsNaN(v)));
    }

    [Theory]
    [InlineData("{\"step\":3,\"loss\":0.4", "not valid JSON")]
    [InlineData("[1,2]", "expected a JSON object")]
    [InlineData("{\"loss\":0.4}", "\"step\" is missing")]
    [InlineData("{\"step\":\"3\",\"loss\":0.4}", "\"step\" is missing or not a number")]
    [InlineData("{\"step\":3,\"loss\":\"0.4\"}", "\"loss\" must be a number or null")]
    public void AMalformedLineFailsWithTheFileAndLine(string badLine, string reason)
    {
        string path = WriteMetrics("run", 5, 1.0);
        var lines = File.ReadAllLines(path).ToList();
        lines.Insert(2, badLine);
        File.WriteAllLines(path, lines);
        string png = Path.Combine(_dir, "bad.png");

        var e = Assert.Throws<InvalidDataException>(() => TrainingCurvesPlot.Write(path, png, new CurveReport("t", [])));
        Assert.StartsWith(path + ":3: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(png));

        string good = WriteMetrics("good", 5, 1.0);
        var c = Assert.Throws<InvalidDataException>(() => TrainingCurvesPlot.WriteComparison([("good", good), ("run", path)], png, new CurveReport("t", [])));
        Assert.StartsWith(path + ":3: ", c.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EvalLinesBetweenTrainingLinesGiveTheirOwnCurvesWithoutBreakingTheTrainingOnes()
    {
        string path = Path.Combine(_dir, "with-eval.jsonl");
        File.WriteAllLines(path,
        [
            """{"step": 1, "loss": 0.5, "kl": 0.1}""",
            """{"step": 2, "loss": 0.45, "kl": 0.2}""",
            """{"step": 2, "eval_loss": 0.48, "eval_kl": 0.15, "eval_runtime": 0.1}""",
            """{"step": 3, "loss": 0.4, "kl": null}""",
            """{"step": 4, "loss": 0.35, "kl": 0.3}""",
            """{"step": 4, "eval_loss": 0.44, "eval_kl": 0.2}""",
        ]);
        MetricsTable table = MetricsTable.Read(path, ["loss", "kl", "eval_loss", "eval_kl"]);
        Assert.Equal([0, 1, 3, 4], table.Rows("loss"));
        Assert.Equal([2, 5], table.Rows("eval_loss"));
        Assert.Equal([0, 1, 3, 4], table.Rows("kl")); // the null at step 3 is kept: it still breaks the curve
        string png = Path.Combine(_dir, "with-eval.png");
        TrainingCurvesPlot.Write(path, png, new CurveReport("eval", []));
        using SKBitmap bitmap = SKBitmap.Decode(png);
        Assert.Equal((TrainingCurvesPlot.Width, TrainingCurvesPlot.Height), (bitmap.Width, bitmap.Height));
    }

    [Fact]
    public void AnEmptyFileIsAnError()
    {
        string path = Path.Combine(_dir, "metrics.jsonl");
        File.WriteAllText(path, "\n");
        var e = Assert.Throws<InvalidDataException>(() => TrainingCurvesPlot.Write(path, Path.Combine(_dir, "x.png"), new CurveReport("t", [])));
        Assert.Contains("no metrics lines", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PlotCommandComparesRunsAndReportsBadInput()
    {
        string kto = WriteMetrics("kto", 12, 1.0);
        string apo = WriteMetrics("apo", 12, 0.5);
        string png = Path.Combine(_dir, "cmp.png");
        var r = KtoProcess.Run(_dir, "plot", "--metrics", kto, "--name", "kto", "--metrics", apo, "--name", "apo_zero_unpaired",
            "--out", png, "--title", "compare", "--note", "first note", "--note", "second note");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal((TrainingCurvesPlot.Width, TrainingCurvesPlot.Height), PngSize(File.ReadAllBytes(png)));

        var single = KtoProcess.Run(_dir, "plot", "--metrics", "kto/metrics.jsonl", "--out", "single.png");
        Assert.True(single.ExitCode == 0, single.Stderr);
        Assert.True(File.Exists(Path.Combine(_dir, "single.png")));

        var names = KtoProcess.Run(_dir, "plot", "--metrics", kto, "--metrics", apo, "--name", "only-one", "--out", png);
        Assert.Equal(1, names.ExitCode);
        Assert.Contains("one --name per --metrics", names.Stderr, StringComparison.Ordinal);

        File.AppendAllText(apo, "{\"step\":130,\"loss\":\n");
        var bad = KtoProcess.Run(_dir, "plot", "--metrics", kto, "--metrics", apo, "--out", png);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(apo + ":13: ", bad.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("runs/kto/metrics.jsonl", "kto")]
    [InlineData("runs/apo_zero_unpaired/metrics.jsonl", "apo_zero_unpaired")]
    [InlineData("saved/kto-run3.jsonl", "kto-run3")]
    public void DefaultRunNamesComeFromTheRunFolder(string path, string expected) =>
        Assert.Equal(expected, Commands.PlotCommand.DefaultRunName(path));
}
