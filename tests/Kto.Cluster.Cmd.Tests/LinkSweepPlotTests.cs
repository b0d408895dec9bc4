using Kto.Cluster.Cmd.Reports;
using SkiaSharp;

namespace Kto.Cluster.Cmd.Tests;

/// <summary><c>kto bench plot</c>: reads rig-sweep results, refuses untagged or foreign lines with file:line, draws one line per mode.</summary>
public sealed class LinkSweepPlotTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-sweep-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Result(double mbit, bool lora, int trainers, double one, double many, int loss = 0) =>
        System.FormattableString.Invariant($"{{\"bench\":\"cluster\",\"lora\":{(lora ? "true" : "false")},\"full_determinism\":false,\"trainers\":{trainers},\"trainers_1_step_s\":{one},\"trainers_{trainers}_step_s\":{many},\"link_mbit\":{mbit},\"loss_pct\":{loss}}}");

    [Fact]
    public void ResultsAreReadAndDrawnIntoAPngWithTheFullAndLoraLines()
    {
        string path = Path.Combine(_dir, "sweep.jsonl");
        File.WriteAllLines(path, [Result(100, false, 2, 0.9, 3.2), Result(1000, false, 2, 0.9, 0.95), Result(10000, false, 2, 0.9, 0.78),
            Result(100, true, 2, 0.8, 0.83), Result(1000, true, 2, 0.8, 0.66), Result(10000, true, 2, 0.8, 0.54), Result(1000, false, 2, 0.9, 1.06, loss: 1)]);
        var points = LinkSweepPlot.Read(path);
        Assert.Equal(7, points.Count);
        Assert.Equal(3.2, points[0].ManyStepS);
        Assert.True(points[5].Lora);

        var r = KtoProcess.Run(_dir, "bench", "plot", "--results", path, "--out", Path.Combine(_dir, "sweep.png"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        using SKBitmap png = SKBitmap.Decode(Path.Combine(_dir, "sweep.png"));
        Assert.Equal(1100, png.Width);
        // Category10 blue (full) and orange (LoRA) lines are both drawn.
        bool Has(SKColor c) => Enumerable.Range(0, png.Width).Any(x => Enumerable.Range(0, png.Height).Any(y => png.GetPixel(x, y) == c));
        Assert.True(Has(new SKColor(0x1F, 0x77, 0xB4)));
        Assert.True(Has(new SKColor(0xFF, 0x7F, 0x0E)));
    }

    [Fact]
    public void AnUntaggedOrForeignLineIsRefusedNamingFileAndLine()
    {
        string path = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllLines(path, [Result(100, false, 2, 0.9, 3.2), "{\"bench\":\"cluster\",\"lora\":false,\"full_determinism\":false,\"trainers_1_step_s\":1,\"trainers_2_step_s\":1}"]);
        var e = Assert.Throws<InvalidDataException>(() => LinkSweepPlot.Read(path));
        Assert.Contains($"{path}:2: no \"link_mbit\"", e.Message);
        File.WriteAllLines(path, ["{\"bench\":\"allreduce\"}"]);
        var r = KtoProcess.Run(_dir, "bench", "plot", "--results", path, "--out", Path.Combine(_dir, "x.png"));
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains($"{path}:1: expected a kto bench cluster result", r.Stderr + r.Stdout);
    }
}
