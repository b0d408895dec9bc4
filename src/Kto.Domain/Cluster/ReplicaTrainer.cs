using System.Globalization;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Cluster;

/// <summary>
/// A trainer replica's state for a run: the plan, schedule, optimizer and <see cref="ReplicaStep"/> around a prepared
/// <see cref="TrainingSetup"/>, and the number of committed steps its weights include (<see cref="HeldStep"/>). Each
/// step is two calls: <see cref="Reduce(int, long, IAllReduce, IReadOnlyList{int})"/> (compute and all-reduce; the result is what the member reports) and, once
/// the step is committed, <see cref="Apply(int, long)"/>. Its whole state (weights, optimizer moments, step) moves between
/// replicas with <see cref="ExportState"/> / <see cref="ImportState"/>, and to disk as a training checkpoint.
/// </summary>
public sealed class ReplicaTrainer : IDisposable
{
    private readonly KtoConfig _config;
    private readonly LrSchedule _schedule;
    private readonly ReplicaStep _step;
    private readonly KtoStepper _stepper;
    private readonly AdamW _optimizer;
    private readonly CausalLm _policy;
    private readonly string _fingerprint;
    private readonly MixedPrecision? _precision;
    private readonly Func<Dictionary<string, double>>? _evaluate;
    private (int Step, long Generation)? _reduced;
    private (int Rank, int Size, IReadOnlyList<int>? Shares)? _group;

    /// <summary>Taken by the readers of the trainable weights that may run beside a step (see <see cref="PeftReference.Gate"/>).</summary>
    private readonly object _weightsGate;

    /// <summary>Wraps <paramref name="setup"/> (not owned); the replica holds step 0 (the initial weights).</summary>
    public ReplicaTrainer(TrainingSetup setup)
    {
        _config = setup.Config;
        _policy = setup.Policy;
        _fingerprint = setup.Data.Fingerprint;
        Plan = BatchPlan.For(_config, setup.Data.Items.Count);
        TotalSteps = Plan.TotalSteps(_config.NumTrainEpochs, _config.MaxSteps);
        _schedule = LrSchedule.For(_config, TotalSteps);
        _precision = setup.Precision;
        // A reference that computes (not precomputed or supplied log-probs) is scored a step ahead while the member waits.
        Lookahead = setup.Reference is LiveReference or PeftReference ? new ReferenceLookahead(setup.Reference) : null;
        _weightsGate = (setup.Reference as PeftReference)?.Gate ?? new object();
        var stepper = new KtoStepper(setup.Compute, Lookahead ?? setup.Reference, _config.LossOptions, setup.Tokenizer.EosTokenId, setup.Device) { Precision = _precision, DropoutSeed = _config.Seed };
        _stepper = stepper;
        _step = new ReplicaStep(setup.Policy, stepper, setup.Data.Items, _precision,
            _config.FullDeterminism ? _config.DeterminismSlices : null, _config.GradientAccumulationSteps);
        _evaluate = setup.EvalData is { } eval && setup.EvalReference is { } evalReference
            ? () => KtoEvaluation.Run(stepper, evalReference, eval, _config.PerDeviceEvalBatchSize)
            : null;
        _optimizer = new AdamW(setup.Policy.named_parameters().Select(p => (p.name, p.parameter)), _config.AdamBeta1, _config.AdamBeta2, _config.AdamEpsilon, _config.WeightDecay);
        setup.Policy.train();
    }

    /// <summary>The run's batch plan.</summary>
    public BatchPlan Plan { get; }

    /// <summary>Optimizer steps in the run.</summary>
    public int TotalSteps { get; }

    /// <summary>Committed steps the weights include.</summary>
    public int HeldStep { get; private set; }

    /// <summary>The reference's scores formed ahead (see <see cref="ScoreNextStepAhead"/>), or null when the run's reference
    /// log-probs are precomputed or supplied by the scorer pool.</summary>
    public ReferenceLookahead? Lookahead { get; }

    /// <summary>Computes step <paramref name="step"/> as a member of <paramref name="group"/>; see <see cref="ReplicaStep.Run"/>.</summary>
    public ReducedStep Reduce(int step, IAllReduce group) => Reduce(step, 0, group);

    /// <summary>As <see cref="Reduce(int, IAllReduce)"/>, remembering the attempt so that only its commit is applied.</summary>
    /// <param name="step">The step to compute (the one the replica holds).</param>
    /// <param name="generation">The attempt.</param>
    /// <param name="group">Its members.</param>
    /// <param name="shares">Each member's share of every micro-batch (<see cref="StepStart.Shares"/>), or null for equal shares.</param>
    /// <exception cref="InvalidOperationException">The replica does not hold step <paramref name="step"/>.</exception>
    public ReducedStep Reduce(int step, long generation, IAllReduce group, IReadOnlyList<int>? shares = null)
    {
        if (step != HeldStep) throw new InvalidOperationException($"asked to compute step {step}, but this replica holds {HeldStep} committed steps");
        _reduced = null;
        _stepper.Step = step;
        ReducedStep result = _step.Run(Plan.Step(step), group, shares);
        _reduced = (step, generation);
        _group = (group.Rank, group.Size, shares);
        return result;
    }

    /// <summary>
    /// Scores the reference log-probs of the step after the one just reduced, for the same membership and shares, while the member
    /// would wait for its commit (see <see cref="ReferenceLookahead"/>); that step then only looks them up. Nothing to
    /// do (returns 0) without a live reference, before any reduction or after the last step. Returns the shards scored.
    /// </summary>
    public int ScoreNextStepAhead()
    {
        if (Lookahead is null || _reduced is not { } reduced || _group is not { } group || reduced.Step + 1 >= TotalSteps) return 0;
        var shards = _step.Shards(Plan.Step(reduced.Step + 1), group.Rank, group.Size, group.Shares).ToList();
        Lookahead.ScoreAhead(shards);
        return Lookahead.Held;
    }

    /// <summary>Applies the reduced gradients of <paramref name="step"/>; returns the gradient norm before clipping.</summary>
    public double Apply(int step) => Apply(step, 0);

    /// <summary>Applies the reduced gradients of attempt <paramref name="generation"/> of <paramref name="step"/>.</summary>
    /// <exception cref="InvalidOperationException">That attempt is not the one this replica last reduced.</exception>
    public double Apply(int step, long generation)
    {
        if (_reduced != (step, generation))
            throw new InvalidOperationException($"step {step} generation {generation} was committed, but this replica holds the gradients of {(_reduced is { } r ? $"step {r.Step} generation {r.Generation}" : "no attempt")}");
        _reduced = null;
        double norm = _step.Apply(_optimizer, _schedule.At(step), _config.MaxGradNorm);
        HeldStep = step + 1;
        return norm;
    }

    /// <summary>Evaluates the held weights on the run's eval set (<see cref="KtoEvaluation"/>), exactly as <c>kto train</c> does.</summary>
    /// <exception cref="InvalidOperationException">The run has no eval set.</exception>
    public Dictionary<string, double> Evaluate() => (_evaluate ?? throw new InvalidOperationException("the run has no eval_dataset_path / eval_strategy"))();

    /// <summary>Forgets a reduced attempt that will not be committed.</summary>
    public void Discard() => _reduced = null;

    /// <summary>Writes an atomic training checkpoint of the held step under <paramref name="outputDir"/>; returns its path.</summary>
    public string SaveCheckpoint(string outputDir)
    {
        lock (_weightsGate) return TrainingCheckpoint.Save(outputDir, _policy, _optimizer, new TrainerState(HeldStep, _fingerprint, TotalSteps, (double)HeldStep / Plan.StepsPerEpoch), _precision, _step.Exact);
    }

    /// <summary>Loads a verified checkpoint of this run's data; the replica then holds its step.</summary>
    /// <exception cref="InvalidDataException">The checkpoint is corrupt or belongs to other data or another model.</exception>
    public void RestoreCheckpoint(string dir)
    {
        TrainerState state = TrainingCheckpoint.Restore(dir, _policy, _optimizer, _precision, _step.Exact);
        if (state.DatasetFingerprint != _fingerprint)
            throw new InvalidDataException($"{dir}: was trained on different data (fingerprint {state.DatasetFingerprint[..12]}…, this run {_fingerprint[..12]}…)");
        _reduced = null;
        HeldStep = state.GlobalStep;
    }

    /// <summary>The replica's whole state (weights, optimizer moments and step count, held step) as a safetensors image;
    /// it may be called while a step is being reduced on another thread (the weights do not change until the apply).</summary>
    public byte[] ExportState()
    {
        lock (_weightsGate) return ExportStateHoldingGate();
    }

    private byte[] ExportStateHoldingGate()
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in _policy.named_parameters().Where(p => p.parameter.requires_grad)) tensors[ModelPrefix + name] = p.detach(); // LoRA: adapters only; the joiner loads the base itself
        foreach (var (name, t) in _optimizer.StateTensors()) tensors[OptimizerPrefix + name] = t;
        var metadata = new Dictionary<string, string>(_precision?.ScalerState() ?? new Dictionary<string, string>())
        {
            ["held_step"] = HeldStep.ToString(CultureInfo.InvariantCulture),
            ["step_count"] = _optimizer.StepCount.ToString(CultureInfo.InvariantCulture),
            ["dataset_fingerprint"] = _fingerprint,
        };
        foreach (var (k, v) in _step.Exact?.State() ?? new Dictionary<string, string>()) metadata[k] = v; // full_determinism's grid
        using var stream = new MemoryStream();
        Safetensors.Write(stream, tensors, metadata);
        return stream.ToArray();
    }

    /// <summary>Takes over a state made by <see cref="ExportState"/> on a replica of the same run.</summary>
    /// <exception cref="InvalidDataException">The image is damaged or belongs to another run or model.</exception>
    public void ImportState(byte[] image)
    {
        Safetensors.Contents contents = Safetensors.Read(image, "transferred replica state");
        try
        {
            if (!contents.Metadata.TryGetValue("dataset_fingerprint", out string? fp) || fp != _fingerprint)
                throw new InvalidDataException("transferred replica state belongs to other data");
            using (no_grad())
            {
                foreach (var (name, p) in _policy.named_parameters().Where(p => p.parameter.requires_grad))
                {
                    if (!contents.Tensors.TryGetValue(ModelPrefix + name, out Tensor? t) || !t.shape.SequenceEqual(p.shape))
                        throw new InvalidDataException($"transferred replica state: tensor \"{name}\" missing or of another shape");
                    p.copy_(t);
                }
            }
            var optimizer = contents.Tensors.Where(kv => kv.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[OptimizerPrefix.Length..], kv => kv.Value, StringComparer.Ordinal);
            _optimizer.LoadState(long.Parse(contents.Metadata["step_count"], CultureInfo.InvariantCulture), optimizer);
            HeldStep = int.Parse(contents.Metadata["held_step"], CultureInfo.InvariantCulture);
            _precision?.RestoreScalerState(contents.Metadata);
            _step.Exact?.RestoreState(contents.Metadata);
            _precision?.MastersToCompute();
            _reduced = null;
        }
        finally
        {
            foreach (Tensor t in contents.Tensors.Values) t.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose() => _optimizer.Dispose();

    private const string ModelPrefix = "model.";
    private const string OptimizerPrefix = "optimizer.";
}
