using System.Diagnostics;
using Kto.Domain.Data;
using Kto.Domain.Devices;
using Kto.Domain.Loss;
using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Bench;

/// <summary>Timings of one side of the comparison.</summary>
/// <param name="MedianStepMs">Median wall time of one optimizer step.</param>
/// <param name="ExamplesPerSecond">Batch / median step time.</param>
/// <param name="MeanStepMs">Mean wall time of one optimizer step: what a run of many steps takes per step, its slow steps
/// included (the figure to set against a rate measured over a run, as <c>kto bench cluster</c>'s).</param>
public sealed record StepTiming(double MedianStepMs, double ExamplesPerSecond, double MeanStepMs);

/// <summary>Both sides of <c>kto bench step</c>.</summary>
/// <param name="Kto">The product's step: <see cref="KtoStepper"/> + clipping + <see cref="AdamW"/>.</param>
/// <param name="Bare">A bare TorchSharp loop doing the same work on pre-built tensors with torch.optim.AdamW.</param>
/// <param name="PeakStepBytes">How far one step of ours (after a warm-up step) raises the peak resident size, measured in a
/// fresh process whose allocator returns every block of 1 MB or more to the system when it is freed.</param>
/// <param name="BarePeakStepBytes">The same for the bare loop.</param>
/// <param name="ProcessPeakBytes">The peak resident size of that process during the step: weights, gradients, optimizer
/// state, activations and the runtime — what a training process needs.</param>
/// <param name="BareProcessPeakBytes">The same for the bare loop.</param>
/// <param name="TrainableParameters">Parameters the step trains (LoRA: the adapters').</param>
/// <param name="Parameters">All parameters of the policy.</param>
public sealed record StepBenchResult(StepTiming Kto, StepTiming Bare, long PeakStepBytes, long BarePeakStepBytes, long ProcessPeakBytes, long BareProcessPeakBytes,
    long TrainableParameters, long Parameters);

/// <summary>
/// Times one KTO training step of a configurable GPT against a bare TorchSharp loop doing the same work
/// (KL forward without gradient, reference forwards unless precomputed, policy forward/backward, clipping,
/// AdamW), alternating the two step by step so machine noise hits both alike.
/// </summary>
public static class StepBenchmark
{
    /// <summary>Runs the comparison.</summary>
    /// <param name="o">What to run.</param>
    /// <param name="peakInChild">Runs <see cref="PeakOfOneStep"/> for a side ("kto" or "bare") in a fresh process.</param>
    public static StepBenchResult Run(StepBenchOptions o, Func<string, (long Step, long Process)> peakInChild)
    {
        torch.set_num_threads(o.Threads);
        Device device = DeviceSpec.Resolve(o.Device);
        LmConfig config = ModelConfig(o);
        List<TrainItem> items = SyntheticItems(o);
        var lossOptions = new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1);

        var kto = new KtoSide(config, items, lossOptions, o, device);
        var bare = new BareSide(config, items, o, device);
        long trainable = kto.Policy.parameters().Where(p => p.requires_grad).Sum(p => p.numel()), all = kto.Policy.parameters().Sum(p => p.numel());
        for (int i = 0; i < o.WarmupSteps; i++) { kto.Step(); bare.Step(); }
        var ktoMs = new List<double>();
        var bareMs = new List<double>();
        for (int i = 0; i < o.Steps; i++)
        {
            // Alternate which side goes first, so neither always runs on a warmer cache or a quieter moment.
            if (i % 2 == 0) { ktoMs.Add(Time(kto.Step)); bareMs.Add(Time(bare.Step)); }
            else { bareMs.Add(Time(bare.Step)); ktoMs.Add(Time(kto.Step)); }
        }
        kto.Dispose();
        bare.Dispose();
        var (ours, oursProcess) = peakInChild(Ours);
        var (bareStep, bareProcess) = peakInChild(Bare);
        return new StepBenchResult(Timing(ktoMs, o.Batch), Timing(bareMs, o.Batch), ours, bareStep, oursProcess, bareProcess, trainable, all);
    }

    /// <summary>
    /// Our step alone (no bare loop between, as a cluster trainer runs it), <see cref="StepBenchOptions.WarmupSteps"/> +
    /// <see cref="StepBenchOptions.Steps"/> times, calling <paramref name="pace"/> after each: the caller times the steps
    /// there, and may hold a process until the others of its group have finished the same step (a lock-step group, whose
    /// barrier is a synchronous data-parallel step's one wait with nothing else of a protocol).
    /// </summary>
    /// <param name="o">What to run.</param>
    /// <param name="pace">Called after each step; the next starts when it returns.</param>
    public static void RunPaced(StepBenchOptions o, Action pace)
    {
        torch.set_num_threads(o.Threads);
        Device device = DeviceSpec.Resolve(o.Device);
        using var kto = new KtoSide(ModelConfig(o), SyntheticItems(o), new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1), o, device);
        for (int i = 0; i < o.WarmupSteps + o.Steps; i++)
        {
            kto.Step();
            pace();
        }
    }

    /// <summary>Our side.</summary>
    public const string Ours = "kto";

    /// <summary>The bare loop's side.</summary>
    public const string Bare = "bare";

    /// <summary>The environment a peak-measuring child needs: glibc's allocator hands every block of 1 MB or more back on free.</summary>
    public static IReadOnlyDictionary<string, string> PeakChildEnvironment { get; } = new Dictionary<string, string> { ["MALLOC_MMAP_THRESHOLD_"] = "1048576" };

    /// <summary>In this (fresh) process: builds one side, runs a warm-up step, and returns how far the next step raises
    /// the peak resident size, and the peak resident size itself during that step.</summary>
    public static (long Step, long Process) PeakOfOneStep(StepBenchOptions o, string side)
    {
        torch.set_num_threads(o.Threads);
        Device device = DeviceSpec.Resolve(o.Device);
        LmConfig config = ModelConfig(o);
        List<TrainItem> items = SyntheticItems(o);
        using IDisposable built = side switch
        {
            Ours => new KtoSide(config, items, new KtoLossOptions(0.1, KtoLossType.Kto, 1, 1), o, device),
            Bare => new BareSide(config, items, o, device),
            _ => throw new ArgumentException($"unknown side \"{side}\"", nameof(side)),
        };
        Action step = built is KtoSide k ? k.Step : ((BareSide)built).Step;
        step();
        long rise = PeakMemory.Of(step);
        return (rise, PeakMemory.Status("VmHWM:"));
    }

    /// <summary>The adapters of <c>--lora</c>: TRL's r and alpha on every linear map, no dropout (TRL's disable_dropout).</summary>
    public static readonly LoraOptions BenchLora = new(16, 32, 0, [LoraOptions.AllLinear]);

    /// <summary>Attaches <see cref="BenchLora"/> to <paramref name="model"/> with fixed initial values.</summary>
    internal static void AttachLora(CausalLm model)
    {
        using var g = new Generator(11);
        LoraAdapters.Attach(model, BenchLora, g);
    }

    /// <summary>The bench model of <paramref name="o"/>.</summary>
    public static LmConfig ModelConfig(StepBenchOptions o)
    {
        if (o.Arch == "gpt2") return new GptConfig(o.Vocab, o.Tokens, o.Width, o.Layers, o.Heads, Tokenizer: "bench");
        if (!DecoderConfig.ModelTypes.Contains(o.Arch)) throw new ArgumentException($"--arch \"{o.Arch}\": expected gpt2 or {string.Join(", ", DecoderConfig.ModelTypes)}");
        if (o.Width % o.Heads != 0 || o.Heads % 2 != 0) throw new ArgumentException($"--width {o.Width} must be a multiple of --heads {o.Heads}, which must be even");
        int inner = (o.Width * 8 / 3 + 63) / 64 * 64;
        return new DecoderConfig(o.Arch, o.Vocab, o.Width, inner, o.Layers, o.Heads, o.Heads / 2, o.Width / o.Heads, 1e-5, 500000, null,
            QkvBias: o.Arch == "qwen2", OProjBias: false, MlpBias: false, QkNorm: o.Arch == "qwen3", TieWordEmbeddings: false, o.Tokens, null, null, o.Vocab - 1);
    }

    private static double Time(Action step)
    {
        var sw = Stopwatch.StartNew();
        step();
        return sw.Elapsed.TotalMilliseconds;
    }

    private static StepTiming Timing(List<double> ms, int batch)
    {
        double median = ms.Order().ElementAt(ms.Count / 2);
        return new StepTiming(median, batch / (median / 1000), ms.Average());
    }

    /// <summary>Random prompts and completions (half the tokens each), alternating labels, KL pairs rotated by one.</summary>
    internal static List<TrainItem> SyntheticItems(StepBenchOptions o)
    {
        var rng = new SplitMix64(12345);
        int promptLen = o.Tokens / 2, completionLen = o.Tokens - promptLen;
        int[] Ids(int n) => Enumerable.Range(0, n).Select(_ => (int)rng.NextBelow((ulong)o.Vocab - 1)).ToArray();
        var examples = Enumerable.Range(0, o.Batch).Select(i => new KtoExample(Ids(promptLen), Ids(completionLen), i % 2 == 0, i + 1)).ToList();
        return examples.Select((e, i) => new TrainItem(i, e, e.PromptIds, examples[(i + 1) % examples.Count].CompletionIds)).ToList();
    }

    private sealed class KtoSide : IDisposable
    {
        private readonly CausalLm _policy;
        private readonly MixedPrecision? _precision;
        private readonly IReferenceModel _reference;
        private readonly AdamW _optimizer;
        private readonly KtoStepper _stepper;
        private readonly List<TrainItem> _items;

        public KtoSide(LmConfig config, List<TrainItem> items, KtoLossOptions loss, StepBenchOptions o, Device device)
        {
            _items = items;
            _policy = NewModel(config, device);
            var run = new Kto.Domain.Options.KtoConfig { Bf16 = o.Precision == "bf16", Fp16 = o.Precision == "fp16" };
            if (o.Precision is not ("fp32" or "bf16" or "fp16")) throw new ArgumentException($"--precision \"{o.Precision}\": expected fp32, bf16 or fp16");
            if (o.Lora)
            {
                MixedPrecision.CastBase(run, _policy); // a half base, float32 adapters
                AttachLora(_policy);
            }
            _precision = MixedPrecision.For(run, _policy);
            ScalarType? half = MixedPrecision.ComputeDtype(run);
            if (o.Lora)
            {
                // The use_peft reference: the policy with its adapters off (no second model).
                var adaptersOff = new PeftReference(_policy, config.VocabSize - 1, device, scoreKl: true, continuedAdapter: false);
                _reference = o.PrecomputedRef ? new PrecomputedReference(adaptersOff.Score(items)) : adaptersOff;
            }
            else if (o.PrecomputedRef)
            {
                using CausalLm refModel = NewModel(config, device, half);
                using var live = new LiveReference(refModel, config.VocabSize - 1, device, scoreKl: true) { ChunkedLogits = !o.NaiveLogits };
                _reference = new PrecomputedReference(live.Score(items));
            }
            else
            {
                _reference = new LiveReference(NewModel(config, device, half), config.VocabSize - 1, device, scoreKl: true) { ChunkedLogits = !o.NaiveLogits };
            }
            _optimizer = new AdamW(_policy.named_parameters().Select(p => (p.name, p.parameter)), 0.9, 0.999, 1e-8, 0);
            _stepper = new KtoStepper(_precision?.Compute ?? _policy, _reference, loss, config.VocabSize - 1, device) { ChunkedLogits = !o.NaiveLogits, Precision = _precision };
            if (o.FullDeterminism)
                _exact = new Kto.Domain.Cluster.ReplicaStep(_policy, _stepper, items, _precision, o.DeterminismSlices);
        }

        private readonly Kto.Domain.Cluster.ReplicaStep? _exact;

        public CausalLm Policy => _policy;

        public void Step()
        {
            _optimizer.ZeroGrad();
            if (_exact is not null)
            {
                // full_determinism: the replica's exact step alone, as kto train runs it.
                _exact.Run([[.. Enumerable.Range(0, _items.Count)]], Kto.Domain.Cluster.SoloGroup.Instance);
                _exact.Exact!.Commit();
                GradientClipping.ClipGlobalNorm(_policy.parameters().Where(p => p.requires_grad), 1.0);
                _optimizer.Step(1e-5);
                return;
            }
            ReferenceLogps[] reference = _stepper.Reference(_items);
            KlPartial kl = _stepper.KlPartial(_items, reference);
            _stepper.ForwardBackward(_items, reference, kl, _items.Count, 1);
            _precision?.GradsToMasters();
            if (!(_precision?.FinishStep() ?? true)) return;
            GradientClipping.ClipGlobalNorm(_policy.parameters().Where(p => p.requires_grad), 1.0);
            _optimizer.Step(1e-5);
            _precision?.MastersToCompute();
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            _reference.Dispose();
            _precision?.Dispose();
            _policy.Dispose();
        }
    }

    private sealed class BareSide : IDisposable
    {
        private readonly CausalLm _policy;
        private readonly CausalLm? _reference;
        private readonly optim.Optimizer _optimizer;
        private readonly Tensor _ids, _mask, _klIds, _klMask, _labels;
        private readonly Tensor? _refLogps, _refKl;
        private readonly bool _lora;
        private readonly TorchSharp.Modules.Parameter[] _trainable;

        public BareSide(LmConfig config, List<TrainItem> items, StepBenchOptions o, Device device)
        {
            _policy = NewModel(config, device);
            if (o.Lora) AttachLora(_policy);
            using (var main = SequenceBatch.Collate(items.Select(i => (i.Example.PromptIds, i.Example.CompletionIds)).ToList(), config.VocabSize - 1, device))
            using (var kl = SequenceBatch.Collate(items.Select(i => (i.KlPromptIds, i.KlCompletionIds)).ToList(), config.VocabSize - 1, device))
            {
                _ids = main.Ids.clone(); _mask = main.LabelMask.clone();
                _klIds = kl.Ids.clone(); _klMask = kl.LabelMask.clone();
            }
            _labels = torch.tensor(items.Select(i => i.Example.Label).ToArray(), device: device);
            _lora = o.Lora;
            var reference = o.Lora ? _policy : NewModel(config, device); // LoRA: the policy with its adapters off
            if (o.PrecomputedRef)
            {
                using (torch.no_grad())
                {
                    if (o.Lora) LoraAdapters.SetEnabled(reference, false);
                    _refLogps = LogProbs(reference, _ids, _mask).detach().clone();
                    _refKl = LogProbs(reference, _klIds, _klMask).detach().clone();
                    LoraAdapters.SetEnabled(reference, true);
                }
                if (!o.Lora) reference.Dispose();
            }
            else if (!o.Lora)
            {
                _reference = reference;
            }
            _trainable = [.. _policy.parameters().Where(p => p.requires_grad)];
            _optimizer = optim.AdamW(_trainable, 1e-5, 0.9, 0.999, 1e-8, 0);
        }

        public void Step()
        {
            using var scope = torch.NewDisposeScope();
            _optimizer.zero_grad();
            Tensor refLogps, refKl, policyKl;
            using (torch.no_grad())
            {
                if (_lora && _refLogps is null) LoraAdapters.SetEnabled(_policy, false);
                refLogps = _refLogps ?? LogProbs(_reference ?? _policy, _ids, _mask);
                refKl = _refKl ?? LogProbs(_reference ?? _policy, _klIds, _klMask);
                LoraAdapters.SetEnabled(_policy, true);
                policyKl = LogProbs(_policy, _klIds, _klMask);
            }
            Tensor kl = (policyKl - refKl).mean().clamp_min(0);
            Tensor r = LogProbs(_policy, _ids, _mask) - refLogps;
            Tensor loss = torch.where(_labels, 1 - torch.sigmoid(0.1 * (r - kl)), 1 - torch.sigmoid(0.1 * (kl - r))).mean();
            loss.backward();
            nn.utils.clip_grad_norm_(_trainable, 1.0);
            _optimizer.step();
        }

        private static Tensor LogProbs(CausalLm model, Tensor ids, Tensor mask)
        {
            // An inner scope frees the (B, T, V) logits of no-grad forwards at once, as a tuned loop would.
            using var scope = torch.NewDisposeScope();
            Tensor logits = model.forward(ids);
            long t = logits.shape[1];
            Tensor sum = (logits.narrow(1, 0, t - 1).log_softmax(-1).gather(-1, ids.narrow(1, 1, t - 1).unsqueeze(-1)).squeeze(-1) * mask).sum(1);
            return sum.MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            _reference?.Dispose();
            _policy.Dispose();
            foreach (var t in new[] { _ids, _mask, _klIds, _klMask, _labels, _refLogps, _refKl }) t?.Dispose();
        }
    }

    private static CausalLm NewModel(LmConfig config, Device device, ScalarType? dtype = null)
    {
        using var g = new Generator(7);
        CausalLm model = config.CreateModel(g);
        if (dtype is { } d) model.to(d);
        model.to(device);
        return model;
    }
}
