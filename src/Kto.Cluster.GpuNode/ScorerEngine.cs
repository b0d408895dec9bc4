using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Devices;
using Kto.Domain.Loss;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using static TorchSharp.torch;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// A scorer's loaded run: the dataset (tokenized and paired as the trainers see it) and the frozen reference model,
/// checked against the run's dataset fingerprint and reference hash. One caller at a time.
/// </summary>
public sealed class ScorerEngine : IDisposable
{
    private readonly GptLmHeadModel _reference;
    private readonly IReadOnlyList<TrainItem> _items;
    private readonly int _padId;
    private readonly Device _device;
    private readonly bool _scoreKl;

    private ScorerEngine(RunSpec spec, GptLmHeadModel reference, IReadOnlyList<TrainItem> items, int padId, Device device, bool scoreKl)
    {
        Spec = spec;
        _reference = reference;
        _items = items;
        _padId = padId;
        _device = device;
        _scoreKl = scoreKl;
    }

    /// <summary>The loaded run.</summary>
    public RunSpec Spec { get; }

    /// <summary>Loads the data and the reference model of <paramref name="spec"/>.</summary>
    /// <exception cref="InvalidDataException">This node's data or reference differ from the run's.</exception>
    public static ScorerEngine Load(RunSpec spec)
    {
        if (spec.ReferenceHash is not { } expected) throw new InvalidOperationException($"run {spec.RunId} does not use the scorer pool");
        KtoConfig config = spec.Config();
        TrainingSetup.ConfigureTorch(config);
        var (data, _, tokenizer) = TrainingSetup.LoadData(config, NullObserver.Instance);
        if (data.Fingerprint != spec.DatasetFingerprint || data.Items.Count != spec.ExampleCount)
            throw new InvalidDataException($"the dataset this node loads ({data.Items.Count} examples, fingerprint {data.Fingerprint[..12]}…) differs from the run's ({spec.ExampleCount}, {spec.DatasetFingerprint[..12]}…)");
        string refDir = TrainingSetup.ReferenceDir(config);
        string hash = TrainingSetup.ReferenceHash(config);
        if (hash != expected)
            throw new InvalidDataException($"{refDir}: this node's reference weights (sha256 {hash[..12]}…) differ from the run's ({expected[..12]}…)");
        Device device = DeviceSpec.Resolve(config.Device);
        GptLmHeadModel model = ModelCheckpoint.Load(refDir, device);
        model.eval();
        foreach (var p in model.parameters()) p.requires_grad = false;
        return new ScorerEngine(spec, model, data.Items, tokenizer.EosTokenId, device, config.LossType.UsesKl());
    }

    /// <summary>Reference log-probs of the examples <paramref name="indices"/> (one batch), as the trainers' step needs them.</summary>
    public (double[] Completion, double[] Kl) Score(int[] indices)
    {
        ReferenceLogps[] scored = ReferenceScoring.Score(_reference, [.. indices.Select(i => _items[i])], _padId, _device, _scoreKl);
        return ([.. scored.Select(s => s.Completion)], [.. scored.Select(s => s.Kl)]);
    }

    /// <inheritdoc />
    public void Dispose() => _reference.Dispose();
}
