using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>
/// What a distributed run is, fixed when it starts: everything the batch plan depends on (so that any number of
/// trainers replays the same global batches) plus the run config the trainers load.
/// </summary>
/// <param name="RunId">Names the run (and its journal).</param>
/// <param name="DatasetFingerprint">The data the plan indexes (see <c>TrainingData.Fingerprint</c>).</param>
/// <param name="ExampleCount">Examples in the data.</param>
/// <param name="Seed">Data-order seed.</param>
/// <param name="Shuffle">Whether epochs are shuffled.</param>
/// <param name="GlobalBatchSize">Examples per micro-batch across all trainers (the KL batch).</param>
/// <param name="Accumulation">Micro-batches per optimizer step.</param>
/// <param name="TotalSteps">Optimizer steps in the run.</param>
/// <param name="ConfigJson">The run config as snake_case JSON.</param>
/// <param name="ReferenceHash">With precompute_ref_log_probs: SHA-256 of the reference weights. The scorer pool then
/// computes reference log-probs (each scorer checks that its reference has this hash), and the scores are stored under
/// dataset fingerprint + this hash. Null: every trainer scores with its own live reference.</param>
/// <param name="PolicyIdentity">The policy's starting model (<see cref="ModelIdentity"/>); every trainer proves it has it.
/// Null in runs started before it was recorded (then not checked).</param>
/// <param name="ReferenceIdentity">The live reference model (<see cref="ModelIdentity"/>) trainers load; null when the
/// scorer pool supplies reference log-probs (checked by <see cref="ReferenceHash"/>) or in older runs.</param>
[MessagePackObject]
public sealed record RunSpec(
    [property: Key(0)] string RunId, [property: Key(1)] string DatasetFingerprint, [property: Key(2)] int ExampleCount,
    [property: Key(3)] int Seed, [property: Key(4)] bool Shuffle, [property: Key(5)] int GlobalBatchSize,
    [property: Key(6)] int Accumulation, [property: Key(7)] int TotalSteps, [property: Key(8)] string ConfigJson,
    [property: Key(9)] string? ReferenceHash = null, [property: Key(10)] string? PolicyIdentity = null, [property: Key(11)] string? ReferenceIdentity = null)
{
    /// <summary>Whether the scorer pool supplies the reference log-probs (precompute_ref_log_probs on).</summary>
    [IgnoreMember]
    public bool UsesScorerPool => ReferenceHash is not null;

    /// <summary>
    /// What differs between this spec and <paramref name="other"/>, as config keys (<c>learning_rate</c>, …) and, for what
    /// is not a key, a description (<c>dataset contents</c>, <c>reference weights</c>); empty when they are the same run.
    /// </summary>
    public IReadOnlyList<string> Differences(RunSpec other)
    {
        var found = new List<string>();
        if (RunId != other.RunId) found.Add("run id");
        if (DatasetFingerprint != other.DatasetFingerprint || ExampleCount != other.ExampleCount) found.Add("dataset contents");
        if (ReferenceHash != other.ReferenceHash) found.Add("reference weights");
        if (PolicyIdentity is not null && other.PolicyIdentity is not null && PolicyIdentity != other.PolicyIdentity) found.Add("policy model files");
        if (ReferenceIdentity is not null && other.ReferenceIdentity is not null && ReferenceIdentity != other.ReferenceIdentity) found.Add("reference model files");
        var mine = System.Text.Json.Nodes.JsonNode.Parse(ConfigJson)!.AsObject();
        var theirs = System.Text.Json.Nodes.JsonNode.Parse(other.ConfigJson)!.AsObject();
        foreach (string key in mine.Select(kv => kv.Key).Union(theirs.Select(kv => kv.Key)).Order(StringComparer.Ordinal))
            if (!System.Text.Json.Nodes.JsonNode.DeepEquals(mine[key], theirs[key])) found.Add(key);
        // Identities recorded by only one of the two (a run started by an earlier version) do not count as a difference.
        if (found.Count == 0 && this with { PolicyIdentity = null, ReferenceIdentity = null } != other with { PolicyIdentity = null, ReferenceIdentity = null })
            found.Add("batch plan"); // seed, shuffle, batch or steps derived differently
        return found;
    }

    /// <summary>The batch plan of this run: a pure function of the spec, independent of the number of trainers.</summary>
    public BatchPlan Plan() => new(ExampleCount, Seed, Shuffle, GlobalBatchSize, Accumulation);

    /// <summary>Checks that <paramref name="data"/>, as a node loaded it, is the data this run was planned on.</summary>
    /// <exception cref="InvalidDataException">The node's dataset differs (size or fingerprint).</exception>
    public void EnsureSameData(TrainingData data)
    {
        if (data.Fingerprint != DatasetFingerprint || data.Items.Count != ExampleCount)
            throw new InvalidDataException($"the dataset this node loads ({data.Items.Count} examples, fingerprint {data.Fingerprint[..12]}…) differs from the run's ({ExampleCount}, {DatasetFingerprint[..12]}…)");
    }

    /// <summary>
    /// Checks that the models a node finds at the run's paths (<paramref name="config"/> as the node resolved it) are the
    /// run's: the policy, and the live reference when trainers load one.
    /// </summary>
    /// <exception cref="InvalidDataException">A model differs (the message names the directory and the files that differ).</exception>
    public void EnsureSameModels(KtoConfig config, bool loadsReference)
    {
        Check("policy", config.ModelNameOrPath, PolicyIdentity, () => ModelIdentity.OfPolicy(config));
        if (loadsReference) Check("reference", TrainingSetup.ReferenceDir(config), ReferenceIdentity, () => ModelIdentity.Of(TrainingSetup.ReferenceDir(config)));

        static void Check(string what, string dir, string? expected, Func<string> identity)
        {
            if (expected is null) return;
            string here = identity();
            if (here != expected) throw new InvalidDataException($"the {what} model this node finds at {dir} differs from the run's: {ModelIdentity.Describe(expected, here)}");
        }
    }

    /// <summary>The run config the trainers load.</summary>
    public KtoConfig Config() => KtoConfigReader.Parse(System.Text.Encoding.UTF8.GetBytes(ConfigJson), $"run {RunId} config");

    /// <summary>
    /// The spec of a run of <paramref name="config"/> (paths already resolved): tokenizes the dataset as every trainer
    /// will, to fix its fingerprint and size. <c>per_device_train_batch_size</c> is the global batch: the cluster
    /// splits it among however many trainers a step has.
    /// </summary>
    public static RunSpec FromConfig(string runId, KtoConfig config, ITrainingObserver observer)
    {
        TrainingData data = TrainingSetup.LoadData(config, observer).Data;
        var plan = BatchPlan.For(config, data.Items.Count);
        return new RunSpec(runId, data.Fingerprint, data.Items.Count, config.EffectiveDataSeed, config.Shuffle, config.PerDeviceTrainBatchSize,
            config.GradientAccumulationSteps, plan.TotalSteps(config.NumTrainEpochs, config.MaxSteps), KtoConfigReader.ToJson(config),
            config.PrecomputeRefLogProbs ? TrainingSetup.ReferenceHash(config) : null, ModelIdentity.OfPolicy(config),
            config.PrecomputeRefLogProbs ? null : ModelIdentity.Of(TrainingSetup.ReferenceDir(config)));
    }
}
