using Kto.Domain.Loss;
using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Domain.Cluster;

/// <summary>
/// One optimizer step as a member of a data-parallel group: the same <see cref="KtoStepper"/> as
/// <c>kto train</c>, on this member's shard of each global micro-batch, with the two reductions the protocol adds —
/// the KL reference point (global sum and count, then mean, then clamp) and the summed gradients. After
/// <see cref="Run"/> every member holds the same reduced gradients and, after <see cref="Apply"/>, the same weights.
/// </summary>
public sealed class ReplicaStep
{
    private readonly CausalLm _policy;
    private readonly KtoStepper _stepper;
    private readonly IReadOnlyList<TrainItem> _items;
    private readonly List<TorchSharp.Modules.Parameter> _parameters;
    /// <summary>The flat gradient buffer, reused every step: a fresh one would be a large-object allocation whose pages
    /// are faulted in again each step (about 40 ms for 3 M parameters).</summary>
    private readonly float[] _grads;

    private readonly MixedPrecision? _precision;

    private readonly int _slices;
    private double[]? _units;

    /// <summary>Creates the step runner for <paramref name="policy"/> (not owned; with <paramref name="precision"/>, the float32
    /// master weights, whose half copy <paramref name="stepper"/> runs on).</summary>
    /// <param name="policy">The model being trained.</param>
    /// <param name="stepper">Its step math.</param>
    /// <param name="items">The dataset's items.</param>
    /// <param name="precision">bf16/fp16 masters, or null.</param>
    /// <param name="determinismSlices"><c>full_determinism</c>'s slices per micro-batch (<c>determinism_slices</c>), or
    /// null for the ordinary step.</param>
    /// <param name="microBatchesPerStep">Micro-batches per optimizer step (gradient_accumulation_steps), for the exact sums' headroom.</param>
    public ReplicaStep(CausalLm policy, KtoStepper stepper, IReadOnlyList<TrainItem> items, MixedPrecision? precision = null, int? determinismSlices = null, int microBatchesPerStep = 1)
    {
        _precision = precision;
        _policy = policy;
        _stepper = stepper;
        _items = items;
        _parameters = [.. policy.parameters().Where(p => p.requires_grad)]; // LoRA: only the adapters' gradients travel
        GradientLength = GradientBuffer.Length(_parameters);
        _grads = new float[GradientLength];
        if (determinismSlices is int slices)
        {
            if (precision is not null) throw new NotSupportedException("full_determinism with bf16/fp16 is not supported");
            _slices = slices;
            Exact = new ExactSum(_parameters, slices * microBatchesPerStep);
        }
    }

    /// <summary>The exact sums of a <c>full_determinism</c> run (their grid is part of the replica's state), or null.</summary>
    public ExactSum? Exact { get; }

    /// <summary>Floats in the flat gradient buffer.</summary>
    public int GradientLength { get; }

    /// <summary>
    /// Forward and backward over this member's shards of the step's micro-batches, then the gradient all-reduce.
    /// Returns the metric sums of the whole group (reduced too) and the checksum of the reduced gradients.
    /// </summary>
    /// <param name="microBatches">The step's micro-batches (dataset indices).</param>
    /// <param name="group">The step's members.</param>
    /// <param name="shares">Each member's share of every micro-batch (of its slices under full_determinism), or null for equal shares.</param>
    public ReducedStep Run(IReadOnlyList<int[]> microBatches, IAllReduce group, IReadOnlyList<int>? shares = null)
    {
        if (Exact is not null) return RunExact(microBatches, group, Exact, shares);
        foreach (var p in _parameters) p.grad?.zero_();
        StepMetrics local = StepMetrics.Zero;
        var exchange = new System.Diagnostics.Stopwatch();
        long sentBefore = group.BytesSent;
        foreach (int[] micro in microBatches)
        {
            List<TrainItem> shard = MemberShards(micro, group.Rank, group.Size, shares)[0];
            ReferenceLogps[] reference = _stepper.Reference(shard);
            KlPartial mine = _stepper.KlPartial(shard, reference);
            double[] kl = [mine.Sum, mine.Count];
            Func<KlPartial> global = GroupKl(group, kl, () => new KlPartial(kl[0], (long)kl[1]), exchange); // global Σ and count, then mean, then clamp
            local += _stepper.ForwardBackward(shard, reference, global, micro.Length, microBatches.Count);
            KlPartial sum = global(); // also when the shard was empty: the sum must end before the next one starts
            if (group.Rank == 0) local += KtoStepper.MicroBatchMetrics(sum); // once per micro-batch, not per member
        }
        _precision?.GradsToMasters(); // the all-reduce sums float32 master gradients, unscaled
        float[] grads = _grads;
        GradientBuffer.CopyGradientsTo(_parameters, grads);
        exchange.Start();
        group.SumInPlace(grads);
        exchange.Stop();
        GradientBuffer.CopyGradientsFrom(grads, _parameters);
        double[] m = MetricVector.From(local);
        exchange.Start();
        group.SumInPlace(m);
        exchange.Stop();
        return new ReducedStep(MetricVector.To(m), GradientBuffer.Checksum(grads), Math.Sqrt(GradientBuffer.SumOfSquares(grads)), exchange.Elapsed.TotalSeconds, group.BytesSent - sentBefore);
    }

    /// <summary>
    /// The <c>full_determinism</c> step: each micro-batch is cut into the run's fixed slices (never by membership), slice k
    /// computed alone by the member its share gives it (contiguous runs of slice indices); each slice's gradient, KL sum and metric sums are rounded onto
    /// <see cref="ExactSum"/>'s grids and summed exactly, so the result is the same bits for any membership.
    /// </summary>
    private ReducedStep RunExact(IReadOnlyList<int[]> microBatches, IAllReduce group, ExactSum exact, IReadOnlyList<int>? shares)
    {
        var exchange = new System.Diagnostics.Stopwatch();
        long sentBefore = group.BytesSent;
        void Sum(double[] v)
        {
            exchange.Start();
            group.SumInPlace(v);
            exchange.Stop();
        }
        exact.Begin();
        while (true)
        {
            exact.Reset();
            double[] metricUnits = new double[MetricVector.Length];
            foreach (int[] micro in microBatches)
            {
                var mine = new List<(List<TrainItem> Items, ReferenceLogps[] Reference)>();
                double[] kl = [0, 0];
                foreach (List<TrainItem> slice in MemberShards(micro, group.Rank, group.Size, shares))
                {
                    ReferenceLogps[] reference = _stepper.Reference(slice);
                    KlPartial partial = _stepper.KlPartial(slice, reference);
                    kl[0] += exact.ScalarUnits(partial.Sum, "KL sum");
                    kl[1] += partial.Count;
                    mine.Add((slice, reference));
                }
                Func<KlPartial> global = GroupKl(group, kl, () => new KlPartial(ExactSum.ScalarValue(kl[0]), (long)kl[1]), exchange);
                foreach (var (slice, reference) in mine)
                {
                    // None, not zero: the slice's backward then writes its gradients afresh (no zeroing pass, no adding
                    // into zeros), and AddSlice spends them.
                    foreach (var p in _parameters) p.grad = null;
                    StepMetrics m = _stepper.ForwardBackward(slice, reference, global, micro.Length, microBatches.Count);
                    exact.AddSlice();
                    AddUnits(metricUnits, MetricVector.From(m), exact);
                }
                KlPartial sum = global();
                if (group.Rank == 0) AddUnits(metricUnits, MetricVector.From(KtoStepper.MicroBatchMetrics(sum)), exact);
            }
            double[] overflow = exact.OverflowVector(group.Rank, group.Size);
            Sum(overflow);
            if (exact.MustRetry(overflow, group.Size)) continue; // every member sees the same sums, so all run the step again
            double[] units = _units ??= new double[exact.Length]; // reused, as _grads
            exact.CopyUnitsTo(units);
            Sum(units);
            exact.WriteGradients(units);
            Sum(metricUnits);
            GradientBuffer.CopyGradientsTo(_parameters, _grads);
            double norm = GradientClipping.Norm(_parameters);
            return new ReducedStep(MetricVector.To([.. metricUnits.Select(ExactSum.ScalarValue)]), GradientBuffer.Checksum(_grads), norm,
                exchange.Elapsed.TotalSeconds, group.BytesSent - sentBefore);
        }
    }

    /// <summary>
    /// The items member <paramref name="rank"/> of <paramref name="size"/> computes of each of
    /// <paramref name="microBatches"/>, in the order and grouping <see cref="Run"/> scores them with the reference: one
    /// shard per micro-batch, or under <c>full_determinism</c> the member's slices (a contiguous run of slice indices,
    /// as many as its share gives it: which member computes a slice changes no bit).
    /// </summary>
    public IEnumerable<IReadOnlyList<TrainItem>> Shards(IReadOnlyList<int[]> microBatches, int rank, int size, IReadOnlyList<int>? shares = null) =>
        microBatches.SelectMany(micro => MemberShards(micro, rank, size, shares));

    private List<List<TrainItem>> MemberShards(int[] micro, int rank, int size, IReadOnlyList<int>? shares)
    {
        if (Exact is null) return [[.. ShardPlan.Shard(micro, shares, size, rank).Select(i => _items[i])]];
        int slices = Math.Min(_slices, micro.Length);
        int[] mine = ShardPlan.Shard([.. Enumerable.Range(0, slices)], shares, size, rank);
        return [.. mine.Select(k => ShardPlan.Shard(micro, slices, k).Select(i => _items[i]).ToList())];
    }

    /// <summary>
    /// Starts the group's sum of a micro-batch's KL partials (<paramref name="kl"/>: Σ and count) and returns what waits
    /// for it once and then gives <paramref name="result"/>: the stepper asks for it after the policy's forward pass,
    /// so the wait for slower members overlaps this member's forward (time in <paramref name="exchange"/>).
    /// </summary>
    private static Func<KlPartial> GroupKl(IAllReduce group, double[] kl, Func<KlPartial> result, System.Diagnostics.Stopwatch exchange)
    {
        exchange.Start();
        Action wait = group.BeginSum(kl);
        exchange.Stop();
        KlPartial? done = null;
        return () =>
        {
            if (done is null)
            {
                exchange.Start();
                wait();
                exchange.Stop();
                done = result();
            }
            return done.Value;
        };
    }

    private static void AddUnits(double[] into, double[] values, ExactSum exact)
    {
        for (int i = 0; i < values.Length; i++) into[i] += exact.ScalarUnits(values[i], "metric sum");
    }

    /// <summary>Clips and applies the reduced gradients (call once the step is committed); returns the gradient norm.</summary>
    /// <remarks>With fp16, a step whose reduced gradients overflowed is skipped (every member holds the same reduced
    /// gradients, so all skip it alike) and the norm returned is +∞.</remarks>
    public double Apply(AdamW optimizer, double learningRate, double maxGradNorm)
    {
        if (!(_precision?.FinishStep() ?? true)) return double.PositiveInfinity;
        Exact?.Commit(); // the grid the committed attempt set is the next step's
        double norm = GradientClipping.ClipGlobalNorm(_parameters, maxGradNorm);
        optimizer.Step(learningRate);
        _precision?.MastersToCompute();
        return norm;
    }
}

/// <summary>What a member holds after the all-reduce of a step; identical on every member of the group.</summary>
/// <param name="Metrics">The group's metric sums.</param>
/// <param name="Checksum">Checksum of the reduced gradients (what the member reports).</param>
/// <param name="GradNorm">Global L2 norm of the reduced gradients before clipping, formed in double precision.</param>
/// <param name="ExchangeSeconds">Time spent in the all-reduces (KL, gradients, metrics), waiting for slower members included.</param>
/// <param name="BytesSent">Bytes this member put on the wire for the step's all-reduces.</param>
public sealed record ReducedStep(StepMetrics Metrics, ulong Checksum, double GradNorm, double ExchangeSeconds = 0, long BytesSent = 0)
{
    /// <summary>Metrics and checksum.</summary>
    public void Deconstruct(out StepMetrics metrics, out ulong checksum)
    {
        metrics = Metrics;
        checksum = Checksum;
    }
}
