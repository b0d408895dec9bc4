using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>
/// Runs alone: the forced collections of <see cref="ScalarsTests"/> would otherwise race the implicit Scalars that other
/// tests' own code creates.
/// </summary>
[CollectionDefinition(nameof(ScalarsTests), DisableParallelization = true)]
public sealed class ScalarsTestsCollection
{
}

/// <summary>
/// <see cref="Scalars"/>: the helpers compute exactly what TorchSharp's implicit forms compute, and their Scalars stay
/// alive through the native call while other threads force collections and finalizer runs.
/// </summary>
[Collection(nameof(ScalarsTests))]
public sealed class ScalarsTests
{
    [Fact]
    public void HelpersEqualTheImplicitFormsBitForBit()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(11);
        Tensor a = randn([64, 48], generator: g), b = randn([64, 48], generator: g);
        Tensor ids = randint(0, 1000, [300], generator: g);

        AssertBitEqual(a + b, a.Plus(b));
        AssertBitEqual(a + 1e-6, a.Plus(1e-6));
        AssertBitEqual(a - 0.3, a.Minus(0.3));
        AssertBitEqual(0.3 - a, a.SubtractedFrom(0.3));
        AssertBitEqual(1 - a, a.SubtractedFrom(1));
        AssertBitEqual(a * 0.1, a.Times(0.1));
        AssertBitEqual(a / 0.7, a.DividedBy(0.7));
        AssertBitEqual(a / 3, a.DividedBy(3));
        AssertBitEqual(ids.div(7, rounding_mode: RoundingMode.floor), ids.DividedBy(7, RoundingMode.floor));
        AssertBitEqual(a.ge(0.2), a.AtLeast(0.2));
        AssertBitEqual(full_like(a, 0.7), Scalars.FullLike(a, 0.7));
        AssertBitEqual(arange(37, dtype: ScalarType.Float32), Scalars.Arange(37, ScalarType.Float32, CPU));
        AssertBitEqual(arange(37, dtype: ScalarType.Int64), Scalars.Arange(37, ScalarType.Int64, CPU));
        AssertBitEqual(a.pow(2), a.pow(Scalars.Two));
    }

    /// <summary>
    /// Three threads run the helpers on 512×512 tensors while a fourth forces full collections and finalizer runs without
    /// pause and leaves finalizable Scalars of a huge value behind. A Scalar left unreachable during a native call (as the
    /// implicit <c>a + b</c>, <c>a * 3.0</c> leave theirs) can then be freed under the kernel, which fails in libtorch
    /// ("Expected false to be true" from <c>Scalar::toFloat</c>) or computes with a garbage or reused value; every element
    /// of every result is checked. The race depends on timing, so this test cannot fail deterministically: with the
    /// implicit forms in place of the helpers it failed in about a third of its runs on a 2-core machine, and a pass
    /// shows only that no lifetime error occurred in this run.
    /// </summary>
    [Fact]
    public async Task HelpersKeepTheirScalarsAliveWhileOtherThreadsCollect()
    {
        const int workers = 3, iterations = 300;
        using var done = new CancellationTokenSource();
        Task collector = Task.Factory.StartNew(() =>
        {
            while (!done.IsCancellationRequested)
            {
                for (int i = 0; i < 32; i++) _ = 1e30.ToScalar(); // freed by the finalizer: native memory for reuse
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Task[] running = [.. Enumerable.Range(0, workers)
            .Select(k => Task.Factory.StartNew(() => Work(k, iterations), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
        try
        {
            await Task.WhenAll(running);
        }
        finally
        {
            await done.CancelAsync();
            await collector;
        }
    }

    private static void Work(int k, int iterations)
    {
        const int n = 512;
        double f = k + 2;        // 2, 3, 4: every result below is exact in float32
        long divisor = 2L << k;  // 2, 4, 8
        using Tensor a = tensor(Enumerable.Repeat(1.5f, n * n).ToArray(), [n, n]);
        using Tensor b = tensor(Enumerable.Repeat(2.25f, n * n).ToArray(), [n, n]);
        for (int i = 0; i < iterations; i++)
        {
            using var scope = NewDisposeScope();
            AssertAll(a.Plus(b), 3.75f);
            AssertAll(a.Times(f), (float)(1.5 * f));
            AssertAll(a.Plus(f), (float)(1.5 + f));
            AssertAll(b.SubtractedFrom(f), (float)(f - 2.25));
            AssertAll(b.DividedBy(divisor), (float)(2.25 / divisor));
        }
    }

    private static void AssertAll(Tensor t, float expected)
    {
        Assert.Equal(expected, t.min().item<float>());
        Assert.Equal(expected, t.max().item<float>());
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.bytes.SequenceEqual(actual.bytes), $"{expected.str()} vs {actual.str()}");
    }
}
