using System.Collections.Concurrent;
using Kto.Domain.Model;
using TorchSharp.Modules;
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
/// The reference of a LoRA run without a separate reference model, as TRL builds it from the PEFT model itself so no
/// second copy of the base sits in memory: fresh adapters are switched off (the base model, exactly); adapters
/// continued from <c>adapter_name_or_path</c> score with their starting weights (TRL's frozen "ref" adapter); modules
/// in <c>modules_to_save</c> score with their original weights (PEFT's <c>original_module</c>). Scores without gradient
/// and without dropout; the policy is not owned.
/// </summary>
public sealed class PeftReference : IReferenceModel
{
    private readonly CausalLm _policy;
    private readonly int _padId;
    private readonly Device _device;
    private readonly bool _scoreKl;
    private readonly bool _adaptersOn;
    private readonly List<(Parameter Parameter, Tensor Value)> _frozen;

    /// <summary>Captures the reference weights of <paramref name="policy"/> as they are now (call before training).</summary>
    /// <param name="policy">The LoRA model being trained.</param>
    /// <param name="padId">Padding id.</param>
    /// <param name="device">Where batches go.</param>
    /// <param name="scoreKl">Whether KL pairs are scored too.</param>
    /// <param name="continuedAdapter">Whether the adapters started from a saved adapter (the reference keeps them on, at their starting weights).</param>
    public PeftReference(CausalLm policy, int padId, Device device, bool scoreKl, bool continuedAdapter)
    {
        _policy = policy;
        _padId = padId;
        _device = device;
        _scoreKl = scoreKl;
        _adaptersOn = continuedAdapter;
        using var noGrad = no_grad();
        _frozen = [.. LoraAdapters.AdapterParameters(policy)
            .Where(p => continuedAdapter || !LoraAdapters.IsLoraParameter(p.Name))
            .Select(p => (p.Parameter, p.Parameter.detach().clone()))];
    }

    /// <summary>
    /// Held while <see cref="Score"/> has the policy's continued adapters or modules_to_save set to their reference
    /// values: a reader of the policy's trainable weights on another thread (a state export for a joining trainer while
    /// a step runs) takes it too, or it may read the reference's values instead of the trained ones.
    /// </summary>
    public object Gate { get; } = new();

    /// <inheritdoc />
    public ReferenceLogps[] Score(IReadOnlyList<TrainItem> items)
    {
        lock (Gate) return ScoreHoldingGate(items);
    }

    private ReferenceLogps[] ScoreHoldingGate(IReadOnlyList<TrainItem> items)
    {
        bool training = _policy.training;
        _policy.eval();
        var trained = new List<Tensor>(_frozen.Count);
        try
        {
            using (no_grad())
                foreach (var (p, value) in _frozen)
                {
                    trained.Add(p.detach().clone());
                    p.copy_(value);
                }
            if (!_adaptersOn) LoraAdapters.SetEnabled(_policy, false);
            return ReferenceScoring.Score(_policy, items, _padId, _device, _scoreKl);
        }
        finally
        {
            LoraAdapters.SetEnabled(_policy, true);
            using (no_grad())
                for (int i = 0; i < trained.Count; i++)
                {
                    _frozen[i].Parameter.copy_(trained[i]);
                    trained[i].Dispose();
                }
            _policy.train(training);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (_, value) in _frozen) value.Dispose();
    }
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
