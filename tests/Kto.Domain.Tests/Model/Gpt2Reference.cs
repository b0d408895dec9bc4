namespace Kto.Domain.Tests.Model;

/// <summary>
/// GPT-2's forward pass in plain double-precision loops, written from the Hugging Face layout: Conv1D weights are
/// (in, out) and applied as x·W + b; the output head reuses wte (tied). Independent of the TorchSharp model.
/// </summary>
internal sealed class Gpt2Reference(Dictionary<string, double[]> w, int vocab, int width, int heads, int layers)
{
    public double[,] Logits(int[] ids)
    {
        int t = ids.Length, c = width;
        var x = new double[t, c];
        for (int i = 0; i < t; i++)
            for (int j = 0; j < c; j++)
                x[i, j] = w["wte.weight"][ids[i] * c + j] + w["wpe.weight"][i * c + j];
        for (int l = 0; l < layers; l++)
        {
            string p = $"h.{l}.";
            var a = Attention(LayerNorm(x, p + "ln_1"), p);
            Add(x, a);
            var h = Conv(LayerNorm(x, p + "ln_2"), p + "mlp.c_fc", c, 4 * c);
            for (int i = 0; i < t; i++) for (int j = 0; j < 4 * c; j++) h[i, j] = GeluTanh(h[i, j]);
            Add(x, Conv(h, p + "mlp.c_proj", 4 * c, c));
        }
        var f = LayerNorm(x, "ln_f");
        var logits = new double[t, vocab];
        for (int i = 0; i < t; i++)
            for (int v = 0; v < vocab; v++)
            {
                double s = 0;
                for (int j = 0; j < c; j++) s += f[i, j] * w["wte.weight"][v * c + j];
                logits[i, v] = s;
            }
        return logits;
    }

    private double[,] Attention(double[,] x, string p)
    {
        int t = x.GetLength(0), c = width, hs = c / heads;
        var qkv = Conv(x, p + "attn.c_attn", c, 3 * c);
        var y = new double[t, c];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < t; i++)
            {
                var scores = new double[i + 1];
                for (int j = 0; j <= i; j++)
                {
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += qkv[i, h * hs + d] * qkv[j, c + h * hs + d];
                    scores[j] = s / Math.Sqrt(hs);
                }
                double max = scores.Max(), z = scores.Sum(s => Math.Exp(s - max));
                for (int j = 0; j <= i; j++)
                {
                    double a = Math.Exp(scores[j] - max) / z;
                    for (int d = 0; d < hs; d++) y[i, h * hs + d] += a * qkv[j, 2 * c + h * hs + d];
                }
            }
        return Conv(y, p + "attn.c_proj", c, c);
    }

    private double[,] Conv(double[,] x, string name, int nIn, int nOut)
    {
        double[] wt = w[name + ".weight"], b = w[name + ".bias"];
        int t = x.GetLength(0);
        var y = new double[t, nOut];
        for (int i = 0; i < t; i++)
            for (int o = 0; o < nOut; o++)
            {
                double s = b[o];
                for (int k = 0; k < nIn; k++) s += x[i, k] * wt[k * nOut + o]; // weight is (in, out)
                y[i, o] = s;
            }
        return y;
    }

    private double[,] LayerNorm(double[,] x, string name)
    {
        int t = x.GetLength(0), c = width;
        var y = new double[t, c];
        for (int i = 0; i < t; i++)
        {
            double mean = 0, var_ = 0;
            for (int j = 0; j < c; j++) mean += x[i, j];
            mean /= c;
            for (int j = 0; j < c; j++) var_ += (x[i, j] - mean) * (x[i, j] - mean);
            var_ /= c;
            for (int j = 0; j < c; j++)
                y[i, j] = (x[i, j] - mean) / Math.Sqrt(var_ + 1e-5) * w[name + ".weight"][j] + w[name + ".bias"][j];
        }
        return y;
    }

    private static void Add(double[,] x, double[,] y)
    {
        for (int i = 0; i < x.GetLength(0); i++) for (int j = 0; j < x.GetLength(1); j++) x[i, j] += y[i, j];
    }

    private static double GeluTanh(double v) => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
}
