using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Model;

/// <summary>Chunked log-probs (logits formed a chunk of rows at a time, recomputed in backward) equal the full log-softmax, values and gradients.</summary>
public sealed class ChunkedTokenLogProbsTests
{
    [Theory]
    [InlineData(1L)]
    [InlineData(7L)]
    [InlineData(50L)]
    [InlineData(64L)]
    public void ValuesAndGradientsEqualTheFullLogSoftmax(long rowsPerChunk)
    {
        var g = new Generator(5);
        using var h = randn([50, 16], generator: g).requires_grad_(true);
        using var w = randn([1000, 16], generator: g).requires_grad_(true);
        using var targets = randint(0, 1000, [50], generator: g);
        using var upstream = randn([50], generator: g);

        Tensor chunked = ChunkedTokenLogProbs.Compute(h, w, targets, rowsPerChunk);
        (chunked * upstream).sum().backward();
        Tensor gh = h.grad!.clone(), gw = w.grad!.clone();
        h.grad!.zero_();
        w.grad!.zero_();

        Tensor full = h.matmul(w.t()).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        (full * upstream).sum().backward();

        Assert.True(chunked.allclose(full, rtol: 1e-5, atol: 1e-5), "values differ");
        Assert.True(gh.allclose(h.grad!, rtol: 1e-4, atol: 1e-5), "dL/dh differs");
        Assert.True(gw.allclose(w.grad!, rtol: 1e-4, atol: 1e-5), "dL/dW differs");
    }

    [Fact]
    public void AFrozenHeadGetsNoGradientAndTheHiddenStatesTheSame()
    {
        var g = new Generator(6);
        using var h = randn([20, 8], generator: g).requires_grad_(true);
        using var w = randn([300, 8], generator: g); // frozen, as a LoRA run's head
        using var targets = randint(0, 300, [20], generator: g);
        ChunkedTokenLogProbs.Compute(h, w, targets, 7).sum().backward();
        Tensor gh = h.grad!.clone();
        h.grad!.zero_();
        h.matmul(w.t()).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum().backward();
        Assert.Null(w.grad);
        Assert.True(gh.allclose(h.grad!, rtol: 1e-4, atol: 1e-5), "dL/dh differs");
    }

    [Fact]
    public void ASequenceBatchScoresAndDifferentiatesAsTheNaivePath()
    {
        using var g = new Generator(3);
        var config = new DecoderConfig("qwen3", 300, 16, 32, 1, 4, 2, 8, 1e-6, 1000000, null, false, false, false, true, false, 24, null, null, 299);
        using var model = new DecoderLm(config, g);
        using var batch = SequenceBatch.Collate([([1, 2, 3], [4, 5, 299]), ([7], [8, 9, 10, 11, 299]), ([12, 13, 14, 15], [16, 299])], 299, CPU);

        SequenceLogProbs.Result a = SequenceLogProbs.Compute(model, batch, chunked: true);
        a.Sum.sum().backward();
        var grads = model.parameters().Select(p => p.grad!.clone()).ToList();
        model.zero_grad();
        SequenceLogProbs.Result b = SequenceLogProbs.Compute(model, batch, chunked: false);
        b.Sum.sum().backward();

        Assert.True(a.Sum.allclose(b.Sum, rtol: 1e-5, atol: 1e-5), $"{a.Sum.str()} vs {b.Sum.str()}");
        Assert.True(a.LogitSum.allclose(b.LogitSum, rtol: 1e-5, atol: 1e-5));
        Assert.Equal(b.TokenCount.data<float>().ToArray(), a.TokenCount.data<float>().ToArray());
        foreach (var (chunkedGrad, p) in grads.Zip(model.parameters()))
            Assert.True(chunkedGrad.allclose(p.grad!, rtol: 1e-4, atol: 1e-6));
    }
}
