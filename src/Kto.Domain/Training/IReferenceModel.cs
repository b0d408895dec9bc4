using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>Where the step gets reference log-probs: a live frozen model or precomputed values.</summary>
public interface IReferenceModel : IDisposable
{
    /// <summary>Reference log-probs of each item's completion and KL pair.</summary>
    ReferenceLogps[] Score(IReadOnlyList<TrainItem> items);
}

/// <summary>Reference log-probs looked up by dataset index (see <see cref="ReferenceLogpsCache"/>).</summary>
public sealed class PrecomputedReference(ReferenceLogps[] byIndex) : IReferenceModel
{
    /// <inheritdoc />
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items) => items.Select(i => byIndex[i.Index]).ToArray();

    /// <inheritdoc />
    public void Dispose() { }
}

/// <summary>A frozen reference model run without gradient on every batch.</summary>
public sealed class LiveReference : IReferenceModel
{
    private readonly GptLmHeadModel _model;
    private readonly int _padId;
    private readonly Device _device;
    private readonly bool _scoreKl;

    /// <summary>Wraps <paramref name="model"/>, which this object then owns.</summary>
    /// <param name="model">The reference model.</param>
    /// <param name="padId">Padding id.</param>
    /// <param name="device">Where batches go.</param>
    /// <param name="scoreKl">Whether KL pairs are scored too (not for losses without the KL term).</param>
    public LiveReference(GptLmHeadModel model, int padId, Device device, bool scoreKl)
    {
        _model = model;
        _model.eval();
        foreach (var p in _model.parameters()) p.requires_grad = false;
        _padId = padId;
        _device = device;
        _scoreKl = scoreKl;
    }

    /// <inheritdoc />
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items)
    {
        double[] completion = SequenceLogProbs.Score(_model, items.Select(i => (i.Example.PromptIds, i.Example.CompletionIds)).ToList(), _padId, items.Count, _device);
        double[] kl = _scoreKl
            ? SequenceLogProbs.Score(_model, items.Select(i => (i.KlPromptIds, i.KlCompletionIds)).ToList(), _padId, items.Count, _device)
            : new double[items.Count];
        return completion.Select((c, k) => new ReferenceLogps(c, kl[k])).ToArray();
    }

    /// <inheritdoc />
    public void Dispose() => _model.Dispose();
}
