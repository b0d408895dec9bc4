using Kto.Domain.Cluster;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Cluster;

/// <summary>
/// The one-pass CPU kernels of <see cref="ExactSum"/> give the bits of the tensor ops they replace (which the other
/// devices run): g × 2^-floor in float32, rounded half to even, added into float64; units × 2^floor cast to float32.
/// </summary>
public sealed class ExactSumKernelTests
{
    /// <summary>Random gradients of many magnitudes, with exact ties (k + ½ units), zeros, −0 and a length that is not a multiple of the vector width.</summary>
    private static float[] Gradient(int n, int seed, int floor)
    {
        var rng = new Random(seed);
        var g = new float[n];
        for (int j = 0; j < n; j++)
        {
            g[j] = (j % 7) switch
            {
                0 => (float)Math.ScaleB(rng.Next(-1000, 1000) + 0.5, floor), // a tie on the grid
                1 => 0f,
                2 => -0f,
                _ => (float)(rng.NextDouble() * 2 - 1) * (float)Math.ScaleB(1, rng.Next(-30, 12)),
            };
        }
        return g;
    }

    [Theory]
    [InlineData(1, -20)]
    [InlineData(7, -20)]
    [InlineData(1003, -20)]
    [InlineData(4099, -40)]
    [InlineData(4099, 3)]
    public void RoundAndAddGivesTheBitsOfScalingAndRoundingInFloat32ThenAddingInFloat64(int n, int floor)
    {
        float[] g = Gradient(n, seed: n, floor);
        double scale = Math.ScaleB(1, -floor);
        double[] start = [.. Enumerable.Range(0, n).Select(j => (double)(j * 3 - n))];

        double[] units = [.. start];
        double max = ExactSum.RoundAndAdd(g, units, scale);

        using var gt = tensor(g);
        using var expected = tensor(start);
        using (Tensor q = gt.mul(scale).round_()) expected.add_(q);
        Assert.Equal(expected.data<double>().ToArray(), units);
        Assert.Equal(g.Max(MathF.Abs), (float)max);
        Assert.True(units.Zip(start, (u, s) => u - s).All(d => d == Math.Floor(d)), "units are integers");
    }

    [Fact]
    public void RoundAndAddReportsANonFiniteElement()
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            foreach (int at in new[] { 0, 9, 20 })
            {
                float[] g = new float[21];
                g[at] = bad;
                Assert.True(double.IsNaN(ExactSum.RoundAndAdd(g, new double[21], 1.0)), $"{bad} at {at}");
            }
        Assert.Throws<ArgumentException>(() => ExactSum.RoundAndAdd(new float[3], new double[4], 1.0));
    }

    [Theory]
    [InlineData(5, -30)]
    [InlineData(4099, -30)]
    [InlineData(4099, 2)]
    public void UnitsToGradientGivesTheBitsOfScalingInFloat64AndCastingToFloat32(int n, int floor)
    {
        var rng = new Random(n);
        double[] units = [.. Enumerable.Range(0, n).Select(j => Math.Round((rng.NextDouble() * 2 - 1) * Math.ScaleB(1, rng.Next(0, 48))))];
        double scale = Math.ScaleB(1, floor);
        float[] g = new float[n];
        double max = ExactSum.UnitsToGradient(units, g, scale);

        using var ut = tensor(units);
        using Tensor v = ut.mul(scale);
        using Tensor expected = v.to_type(ScalarType.Float32);
        Assert.Equal(expected.data<float>().ToArray(), g);
        Assert.Equal(units.Max(u => Math.Abs(u * scale)), max);
    }
}
