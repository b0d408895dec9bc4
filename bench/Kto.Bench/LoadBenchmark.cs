using System.Diagnostics;
using System.Globalization;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using static TorchSharp.torch;

namespace Kto.Bench;

/// <summary>What <c>kto bench load</c> measured.</summary>
/// <param name="ModelBytes">The model's float32 parameters, in bytes.</param>
/// <param name="StoredBytes">The tensors' bytes in the checkpoint (their stored dtype).</param>
/// <param name="Shards">Weight files of the checkpoint.</param>
/// <param name="PeakBytes">Growth of the process's peak resident memory while <see cref="ModelCheckpoint.Load"/> ran.</param>
/// <param name="Seconds">Its wall time.</param>
/// <param name="BarePeakBytes">The same for the baseline: a bare loop that reads each shard whole (<c>File.ReadAllBytes</c>),
/// parses it into tensors and copies them into the model with <c>to_type</c>.</param>
/// <param name="BareSeconds">Its wall time.</param>
public sealed record LoadBenchResult(long ModelBytes, long StoredBytes, int Shards, long PeakBytes, double Seconds, long BarePeakBytes, double BareSeconds);

/// <summary>
/// Peak memory while loading a sharded half-precision checkpoint into float32 weights, against the model's size and
/// against a bare loop that holds each shard whole. Each side runs in a fresh process; its peak is the kernel's VmHWM
/// (reset through <c>/proc/self/clear_refs</c>) minus the resident size when the load starts.
/// </summary>
public static class LoadBenchmark
{
    /// <summary>
    /// Writes a random GPT of the given size into <paramref name="dir"/> (stored as <paramref name="dtype"/>, shards of at
    /// most <paramref name="shardBytes"/>), then loads it both ways, each in a fresh process started by
    /// <paramref name="measureInChild"/> (side name → its peak growth in bytes and seconds), so that neither side reuses
    /// memory the other freed.
    /// </summary>
    public static LoadBenchResult Run(int layers, int width, int heads, int vocab, ScalarType dtype, long shardBytes, string dir,
        Func<string, (long Peak, double Seconds)> measureInChild)
    {
        var config = new GptConfig(vocab, 1024, width, layers, heads, Tokenizer: vocab >= 50257 ? "gpt2" : "byte");
        long modelBytes, storedBytes;
        using (var g = new Generator(1))
        using (var model = new GptLmHeadModel(config, g))
        {
            ModelCheckpoint.Save(model, dir);
            var named = model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)).ToList();
            modelBytes = named.Sum(kv => kv.Value.NumberOfElements * 4);
            storedBytes = named.Sum(kv => kv.Value.NumberOfElements * Safetensors.SizeOf(dtype));
            File.Delete(Path.Combine(dir, ShardedSafetensors.SingleFile));
            ShardedSafetensors.Save(dir, named, shardBytes, dtype);
        }
        int shards = ShardedSafetensors.Files(dir).Count;
        var (peak, seconds) = measureInChild(Ours);
        var (barePeak, bareSeconds) = measureInChild(Bare);
        return new LoadBenchResult(modelBytes, storedBytes, shards, peak, seconds, barePeak, bareSeconds);
    }

    /// <summary>The product's loader.</summary>
    public const string Ours = "ours";

    /// <summary>The baseline loader.</summary>
    public const string Bare = "bare";

    /// <summary>In a fresh process: loads the checkpoint in <paramref name="dir"/> one way; returns the growth of the peak resident size and the time.</summary>
    public static (long Peak, double Seconds) MeasureSide(string dir, string side)
    {
        using (zeros(1)) { } // libtorch loaded before the baseline is taken
        LmConfig config = ModelCheckpoint.LoadConfig(dir);
        return side switch
        {
            Ours => Measure(() => ModelCheckpoint.Load(dir).Dispose()),
            Bare => Measure(() => BareLoad(dir, config)),
            _ => throw new ArgumentException($"unknown side \"{side}\"", nameof(side)),
        };
    }

    /// <summary>The baseline: every shard read whole, parsed into tensors of its dtype, each converted with <c>to_type</c> and copied.</summary>
    private static void BareLoad(string dir, LmConfig config)
    {
        using CausalLm model = config.CreateModel();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (file, _) in ShardedSafetensors.Files(dir))
        {
            Safetensors.Contents contents = Safetensors.Read(File.ReadAllBytes(file), file);
            foreach (var (name, t) in contents.Tensors)
            {
                using Tensor converted = t.to_type(ScalarType.Float32);
                parameters[name].copy_(converted);
                t.Dispose();
            }
        }
    }

    private static (long Peak, double Seconds) Measure(Action load)
    {
        var clock = Stopwatch.StartNew();
        long peak = PeakMemory.Of(load);
        return (peak, clock.Elapsed.TotalSeconds);
    }
}
