using Kto.Cluster.Testing;
using System.Text.Json;

namespace Kto.Cluster.Cmd.Tests;

/// <summary><c>kto bench load</c> at a tiny size through the built tool: both sides measured in their own processes.</summary>
public sealed class BenchLoadTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-bench-load-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take(); // it checks the output's shape, not its figures

    public void Dispose()
    {
        _slot.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void BenchLoadPrintsPeakMemoryOfBothLoadersAgainstTheModelsSize()
    {
        var r = KtoProcess.Run(_dir, "bench", "load", "--layers", "2", "--width", "64", "--heads", "2", "--vocab", "257", "--shard-mb", "1", "--dtype", "fp16");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("load", json.GetProperty("bench").GetString());
        Assert.Equal("fp16", json.GetProperty("dtype").GetString());
        long model = json.GetProperty("model_bytes").GetInt64();
        Assert.Equal(model / 2, json.GetProperty("stored_bytes").GetInt64()); // fp16: 2 bytes per float32 parameter's 4
        Assert.True(json.GetProperty("shards").GetInt32() >= 1);
        foreach (string side in new[] { "", "bare_" })
        {
            Assert.True(json.GetProperty(side + "seconds").GetDouble() > 0, side);
            long peak = json.GetProperty(side + "peak_bytes").GetInt64();
            Assert.Equal((double)peak / model, json.GetProperty(side + "peak_vs_model").GetDouble(), 3); // the printed figures' own quotient
        }
        Assert.Equal(1, KtoProcess.Run(_dir, "bench", "load", "--dtype", "int4").ExitCode);
    }
}
