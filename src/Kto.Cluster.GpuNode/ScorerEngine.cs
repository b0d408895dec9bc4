using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Devices;
using Kto.Domain.Loss;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// A scorer's loaded run: the dataset (tokenized and paired as the trainers see it) and the frozen reference model,
/// checked against the run's dataset fingerprint and reference hash. One caller at a time.
/// </summary>
public sealed class ScorerEngine : IDisposable
{
    private readonly LiveReference _reference;
    private readonly IReadOnlyList<TrainItem> _items;

    private ScorerEngine(RunSpec spec, LiveReference reference, IReadOnlyList<TrainItem> items)
    {
        Spec = spec;
        _reference = reference;
        _items = items;
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
        spec.EnsureSameData(data);
        string refDir = TrainingSetup.ReferenceDir(config);
        string hash = TrainingSetup.ReferenceHash(config);
        if (hash != expected)
            throw new InvalidDataException($"{refDir}: this node's reference weights (sha256 {hash[..12]}…) differ from the run's ({expected[..12]}…)");
        var device = DeviceSpec.Resolve(config.Device);
        var reference = new LiveReference(TrainingSetup.LoadReference(config, refDir, device), tokenizer.EosTokenId, device, config.LossType.UsesKl());
        return new ScorerEngine(spec, reference, data.Items);
    }

    /// <summary>Reference log-probs of the examples <paramref name="indices"/> (one batch), as the trainers' step needs them.</summary>
    public (double[] Completion, double[] Kl) Score(int[] indices)
    {
        ReferenceLogps[] scored = _reference.Score([.. indices.Select(i => _items[i])]);
        return ([.. scored.Select(s => s.Completion)], [.. scored.Select(s => s.Kl)]);
    }

    /// <inheritdoc />
    public void Dispose() => _reference.Dispose();
}
