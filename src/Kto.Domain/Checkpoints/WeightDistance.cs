namespace Kto.Domain.Checkpoints;

/// <summary>How far two sets of weights are apart: what the cluster's proofs compare with one process's weights.</summary>
public static class WeightDistance
{
    /// <summary>Every tensor of a checkpoint's <c>model.safetensors</c> as float32 arrays, by HF name.</summary>
    /// <exception cref="IOException">The file is missing or unreadable.</exception>
    public static Dictionary<string, float[]> ReadWeights(string checkpointDir)
    {
        // The trained weights: the model's, or a LoRA run's adapter (its base is not in the checkpoint).
        string adapter = Path.Combine(checkpointDir, Model.LoraAdapters.WeightsFile);
        var c = Safetensors.Read(File.Exists(adapter) && !File.Exists(Path.Combine(checkpointDir, ModelCheckpoint.WeightsFile)) ? adapter : Path.Combine(checkpointDir, ModelCheckpoint.WeightsFile));
        var w = c.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray());
        foreach (var t in c.Tensors.Values) t.Dispose();
        return w;
    }

    /// <summary>‖a − b‖₂ / ‖a‖₂ over every tensor of <paramref name="a"/> (each must exist in <paramref name="b"/> with the same length).</summary>
    public static double RelativeL2(IReadOnlyDictionary<string, float[]> a, IReadOnlyDictionary<string, float[]> b)
    {
        double diff = 0, norm = 0;
        foreach (var (k, v) in a)
        {
            float[] other = b[k];
            for (int i = 0; i < v.Length; i++)
            {
                diff += Math.Pow(v[i] - other[i], 2);
                norm += (double)v[i] * v[i];
            }
        }
        return Math.Sqrt(diff / norm);
    }
}
