using Kto.Domain.Cluster;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Cluster.Exchange.Tests;

public sealed class GradientBufferTests
{
    private sealed class TwoLayers : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Linear _first = nn.Linear(3, 4);
        private readonly TorchSharp.Modules.Linear _second = nn.Linear(4, 2);
        private readonly TorchSharp.Modules.Linear _unused = nn.Linear(2, 2);

        public TwoLayers() : base(nameof(TwoLayers)) => RegisterComponents();

        public override Tensor forward(Tensor x) => _second.forward(nn.functional.relu(_first.forward(x)));
    }

    [Fact]
    public void GradientsTravelThroughOneFlatBufferAndBack()
    {
        torch.manual_seed(1);
        using var model = new TwoLayers();
        var ps = model.parameters().ToList();
        using (var x = torch.randn(5, 3)) model.forward(x).sum().backward();

        int length = GradientBuffer.Length(ps);
        Assert.Equal(3 * 4 + 4 + 4 * 2 + 2 + 2 * 2 + 2, length);
        var buffer = Enumerable.Repeat(float.NaN, length).ToArray();
        GradientBuffer.CopyGradientsTo(ps, buffer);

        int offset = 0;
        foreach (var p in ps)
        {
            int n = (int)p.numel();
            float[] expected = p.grad is { } g ? g.data<float>().ToArray() : new float[n];
            Assert.Equal(expected, buffer.AsSpan(offset, n).ToArray());
            offset += n;
        }
        Assert.Contains(ps, p => p.grad is null); // the unused layer had no gradient and became zeros

        // Back: doubled values land in every .grad, including the ones that were missing.
        float[] doubled = buffer.Select(v => v * 2).ToArray();
        GradientBuffer.CopyGradientsFrom(doubled, ps);
        Assert.All(ps, p => Assert.NotNull(p.grad));
        var again = new float[length];
        GradientBuffer.CopyGradientsTo(ps, again);
        Assert.Equal(doubled, again);
    }

    [Fact]
    public void ABufferTooShortIsRefused()
    {
        using var model = new TwoLayers();
        var ps = model.parameters().ToList();
        Assert.Throws<ArgumentException>(() => GradientBuffer.CopyGradientsTo(ps, new float[3]));
        Assert.Throws<ArgumentException>(() => GradientBuffer.CopyGradientsFrom(new float[3], ps));
    }

    [Fact]
    public void TheChecksumTellsBitIdenticalBuffersFromOthers()
    {
        float[] a = LoopbackRing.Data(0, 1001);
        float[] b = (float[])a.Clone();
        Assert.Equal(GradientBuffer.Checksum(a), GradientBuffer.Checksum(b));
        b[500] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(b[500]) ^ 1); // one bit
        Assert.NotEqual(GradientBuffer.Checksum(a), GradientBuffer.Checksum(b));
        Assert.NotEqual(GradientBuffer.Checksum(a), GradientBuffer.Checksum(a.AsSpan(0, 1000)));
        Assert.NotEqual(GradientBuffer.Checksum([0f]), GradientBuffer.Checksum([-0f]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(1000003)]
    public void SumOfSquaresMatchesADoublePrecisionReference(int length)
    {
        var rng = new Random(length);
        float[] data = [.. Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 2 - 1) * MathF.Pow(10, rng.Next(-6, 3)))];
        double reference = 0;
        foreach (float x in data) reference += (double)x * x; // every square exact in double; only the order of the sum differs
        double fast = GradientBuffer.SumOfSquares(data);
        Assert.Equal(reference, fast, tolerance: Math.Max(1e-300, reference * 1e-12));
        Assert.Equal(BitConverter.DoubleToInt64Bits(fast), BitConverter.DoubleToInt64Bits(GradientBuffer.SumOfSquares(data.ToArray())));
    }

    [Fact]
    public void SumOfSquaresCountsTheTailAfterTheLastFullVector()
    {
        float[] data = new float[19];
        data[18] = 3; // past the last 16-float block
        data[0] = 4;
        Assert.Equal(25, GradientBuffer.SumOfSquares(data));
    }
}
