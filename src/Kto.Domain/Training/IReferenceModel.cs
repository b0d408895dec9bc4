using System.Collections.Concurrent;
using Kto.Domain.Model;
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
    private readonly CausalLm _model;
    private readonly int _padId;
    private readonly Device _device;
    private readonly bool _scoreKl;

    /// <summary>Wraps <paramref name="model"/>, which this object then owns.</summary>
    /// <param name="model">The reference model.</param>
    /// <param name="padId">Padding id.</param>
    /// <param name="device">Where batches go.</param>
    /// <param name="scoreKl">Whether KL pairs are scored too (not for losses without the KL term).</param>
    public LiveReference(CausalLm model, int padId, Device device, bool scoreKl)
    {
        _model = model;
        _model.eval();
        foreach (var p in _model.parameters()) p.requires_grad = false;
        _padId = padId;
        _device = device;
        _scoreKl = scoreKl;
    }

    /// <summary>Chunked logits (the default); false only to measure the full-logits path (<c>kto bench step --naive-logits</c>).</summary>
    public bool ChunkedLogits { get; init; } = true;

    /// <inheritdoc />
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items) => ReferenceScoring.Score(_model, items, _padId, _device, _scoreKl, ChunkedLogits);

    /// <inheritdoc />
    public void Dispose() => _model.Dispose();
}

/// <summary>
/// The reference of a LoRA run without a separate reference model: the policy itself with its adapters off (TRL does
/// this when a PEFT model is given without a ref_model), so no second copy of the base sits in memory. Scores without
/// gradient and without dropout; the policy is not owned.
/// </summary>
public sealed class AdaptersOffReference(CausalLm policy, int padId, Device device, bool scoreKl) : IReferenceModel
{
    /// <inheritdoc />
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items)
    {
        bool training = policy.training;
        policy.eval();
        try
        {
            using (LoraAdapters.Disabled(policy)) return ReferenceScoring.Score(policy, items, padId, device, scoreKl);
        }
        finally
        {
            policy.train(training);
        }
    }

    /// <inheritdoc />
    public void Dispose() { }
}

/// <summary>
/// Reference log-probs handed in from outside before each step (by the cluster's scorer pool through the coordinator):
/// the trainer that uses it never loads the reference model.
/// </summary>
public sealed class SuppliedReference : IReferenceModel
{
    private readonly ConcurrentDictionary<int, ReferenceLogps> _values = new();

    /// <summary>Examples whose values are held.</summary>
    public int Count => _values.Count;

    /// <summary>Adds the values of examples <paramref name="indices"/> (a value given again replaces the old one).</summary>
    /// <exception cref="ArgumentException">The arrays differ in length.</exception>
    public void Supply(IReadOnlyList<int> indices, IReadOnlyList<double> completion, IReadOnlyList<double> kl)
    {
        if (completion.Count != indices.Count || kl.Count != indices.Count)
            throw new ArgumentException($"{indices.Count} indices but {completion.Count} completion and {kl.Count} KL values");
        for (int k = 0; k < indices.Count; k++) _values[indices[k]] = new ReferenceLogps(completion[k], kl[k]);
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The values of an item were never supplied.</exception>
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items) => [.. items.Select(i => _values.TryGetValue(i.Index, out ReferenceLogps v)
        ? v
        : throw new InvalidOperationException($"the reference log-probs of example {i.Index} were not supplied before its step"))];

    /// <inheritdoc />
    public void Dispose() { }
}
