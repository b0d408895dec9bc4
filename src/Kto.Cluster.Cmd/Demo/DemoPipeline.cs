using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Cluster.Cmd.Cluster;
using Kto.Cluster.Cmd.Reports;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Checkpoints;
using Kto.Domain.Devices;
using Kto.Domain.Evaluation;
using Kto.Domain.Generation;
using Kto.Domain.Loss;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tasks;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.Cmd.Demo;

/// <summary>What <see cref="DemoPipeline.Run"/> produced.</summary>
/// <param name="Before">Evaluation of the reference.</param>
/// <param name="After">Evaluation of the KTO policy.</param>
/// <param name="SummaryPath">The text summary.</param>
/// <param name="PlotPath">The PNG of the training curves.</param>
internal sealed record DemoResult(EvalReport Before, EvalReport After, string SummaryPath, string PlotPath);

/// <summary>
/// The loop a team runs, end to end in one process: feedback prompts → samples from the SFT reference →
/// thumbs-up/down from the addition checker (imbalanced on purpose) → KTO → held-out evaluation before and after →
/// training curves (PNG), a text summary and a JSON record. Every stage reports progress.
/// </summary>
internal sealed class DemoPipeline(DemoOptions o, ConsoleObserver observer)
{
    private const int Stages = 7;
    private const int MaxNewTokens = 6;         // answers of 2-digit addition have at most 3 characters + EOS
    private readonly Stopwatch _total = Stopwatch.StartNew();
    private readonly List<(string Stage, double Seconds)> _times = [];
    private readonly Stopwatch _stageClock = new();
    private string _currentStage = "";
    private int _stage;

    public DemoResult Run(CancellationToken cancel)
    {
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        torch.Device device = DeviceSpec.Resolve(o.Device);
        string outDir = Path.GetFullPath(o.OutputDir);
        Directory.CreateDirectory(outDir);
        string refDir = ResolveReference();
        var task = new AdditionTask();
        LmConfig config = ModelCheckpoint.LoadConfig(refDir);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(refDir, config);

        Stage("choosing prompts");
        var feedbackPrompts = task.Problems(TaskSplit.Train, o.FeedbackPrompts, o.Seed).Select(p => task.Prompt(p.A, p.B)).ToList();
        var evalPrompts = task.Problems(TaskSplit.Eval, o.EvalPrompts, o.Seed).Select(p => task.Prompt(p.A, p.B)).ToList();
        observer.Info($"      {feedbackPrompts.Count} training prompts for feedback, {evalPrompts.Count} held-out prompts for evaluation (disjoint splits)");

        Stage($"sampling {feedbackPrompts.Count * o.SamplesPerPrompt} completions from the reference {refDir}");
        var samples = SampleFeedback(refDir, tokenizer, feedbackPrompts, device);
        TaskJsonlWriter.WriteSamples(Path.Combine(outDir, "samples.jsonl"), samples.Select((s, i) => new GeneratedSample(i / o.SamplesPerPrompt, i % o.SamplesPerPrompt, s.Prompt, s.Completion)));

        Stage($"labelling with the {task.Name} checker, keeping {o.DesirableShare:P0} desirable");
        var kept = samples.Where(s => s.Completion.Length > 0).ToList();
        var (rows, nD, nU) = FeedbackLabeler.Label(kept, task, o.DesirableShare, o.Seed);
        string feedbackPath = Path.Combine(outDir, "feedback.jsonl");
        TaskJsonlWriter.WriteFeedback(feedbackPath, rows);
        observer.Info($"      {rows.Count} feedback rows: {nD} desirable, {nU} undesirable → {feedbackPath}");

        var evalOptions = new EvalOptions(Seed: o.Seed, MaxNewTokens: MaxNewTokens);
        Stage("evaluating the reference on held-out prompts");
        EvalReport before = Evaluate(refDir, null, task, evalPrompts, evalOptions);
        observer.Info("      before: " + before);

        var (dw, uw) = o.RecommendedWeights ? ClassImbalance.RecommendedWeights(nD, nU) : (1.0, 1.0);
        KtoConfig kto = TrainingConfig(refDir, feedbackPath, outDir, dw, uw);
        Stage($"KTO ({kto.LossType.ToName()}, desirable_weight {dw}, undesirable_weight {uw}{(kto.PrecomputeRefLogProbs ? ", precomputed reference" : "")}{(kto.UsePeft ? ", LoRA adapters" : "")})");
        TrainResult trained = o.Trainers > 0 ? TrainOnLocalCluster(kto, outDir, cancel) : TrainInProcess(kto, cancel);
        observer.Done();
        if (cancel.IsCancellationRequested) throw new OperationCanceledException("demo stopped during training");

        Stage("evaluating the KTO policy on the same held-out prompts");
        EvalReport after = o.Lora
            ? Evaluate(refDir, refDir, task, evalPrompts, evalOptions, adapterDir: trained.FinalCheckpoint)
            : Evaluate(trained.FinalCheckpoint, refDir, task, evalPrompts, evalOptions);
        observer.Info("      after:  " + after);

        Stage("writing the report");
        string plot = Path.Combine(outDir, "training_curves.png");
        var notes = Notes(before, after, nD, nU, dw, uw, kto, trained);
        TrainingCurvesPlot.Write(Path.Combine(kto.OutputDir, MetricsLog.FileName), plot,
            new CurveReport($"KTO on {task.Name} feedback — greedy accuracy {before.GreedyAccuracy:P1} → {after.GreedyAccuracy:P1}", notes));
        string summary = WriteSummary(outDir, refDir, before, after, notes, plot);
        WriteJson(outDir, refDir, before, after, evalOptions, nD, nU, dw, uw, kto, trained);
        return new DemoResult(before, after, summary, plot);
    }

    private TrainResult TrainInProcess(KtoConfig kto, CancellationToken cancel)
    {
        using TrainingSetup setup = TrainingSetup.Prepare(kto, observer);
        return new KtoTrainer(setup, observer).Run(cancel);
    }

    /// <summary>The KTO stage on a coordinator and <see cref="DemoOptions.Trainers"/> trainer processes on loopback.</summary>
    private TrainResult TrainOnLocalCluster(KtoConfig kto, string outDir, CancellationToken cancel)
    {
        string clusterDir = Path.Combine(outDir, "cluster");
        if (Directory.Exists(clusterDir)) Directory.Delete(clusterDir, recursive: true); // a fresh journal: the demo always starts over
        if (Directory.Exists(kto.OutputDir)) Directory.Delete(kto.OutputDir, recursive: true);
        Directory.CreateDirectory(clusterDir);
        string runConfig = Path.Combine(clusterDir, "run.json");
        File.WriteAllText(runConfig, KtoConfigReader.ToJson(kto with { NumThreads = Math.Max(1, o.Threads / o.Trainers) }));
        int exit;
        var launcher = LocalClusterLauncher.Start(new LocalClusterOptions(runConfig, "demo", o.Trainers, clusterDir), observer);
        try
        {
            exit = launcher.WaitAsync(cancel).GetAwaiter().GetResult();
        }
        finally
        {
            launcher.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        if (cancel.IsCancellationRequested) throw new OperationCanceledException("demo stopped during training");
        string? final = TrainingCheckpoint.Latest(kto.OutputDir);
        if (exit != 0 || final is null) throw new InvalidOperationException($"the local cluster ended with exit code {exit} and no final checkpoint; see {Path.Combine(clusterDir, "logs")}");
        return new TrainResult(TrainingCheckpoint.ReadVerified(final).GlobalStep, final, new Dictionary<string, double>());
    }

    private void Stage(string what)
    {
        if (_stage > 0) _times.Add((_currentStage, _stageClock.Elapsed.TotalSeconds));
        _stage++;
        _currentStage = what;
        _stageClock.Restart();
        observer.Info($"[{_stage}/{Stages}] {what}");
    }


    private string ResolveReference()
    {
        if (o.Reference is not null) return Path.GetFullPath(o.Reference);
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, DemoOptions.ShippedReference);
                if (File.Exists(Path.Combine(candidate, ModelCheckpoint.WeightsFile))) return candidate;
            }
        }
        throw new FileNotFoundException($"the shipped reference ({DemoOptions.ShippedReference}) was not found above {Directory.GetCurrentDirectory()}; pass --reference DIR");
    }

    private List<Sample> SampleFeedback(string refDir, ITextTokenizer tokenizer, List<string> prompts, torch.Device device)
    {
        using CausalLm reference = ModelCheckpoint.Load(refDir, device);
        int[][] ids = [.. prompts.Select(tokenizer.Encode)];
        var options = new SamplingOptions(MaxNewTokens, 1.0, 0, 1.0, o.Seed, o.SamplesPerPrompt);
        int total = prompts.Count * o.SamplesPerPrompt;
        int[][][] completions = Sampler.Generate(reference, ids, options, tokenizer.EosTokenId, EvalOptions.DefaultBatchSize, device,
            n => observer.Progress(new ProgressUpdate("sample", n, total, new Dictionary<string, double>())));
        observer.Done();
        var samples = new List<Sample>(total);
        for (int i = 0; i < prompts.Count; i++)
            foreach (int[] c in completions[i]) samples.Add(new Sample(prompts[i], tokenizer.Decode(c)));
        return samples;
    }

    private EvalReport Evaluate(string modelDir, string? refDir, IVerifiableTask task, List<string> prompts, EvalOptions options, string? adapterDir = null)
        => Commands.EvalCommand.Evaluate(modelDir, refDir, task, prompts, options, o.Device, observer, adapterDir);

    private KtoConfig TrainingConfig(string refDir, string feedbackPath, string outDir, double dw, double uw) => new()
    {
        ModelNameOrPath = refDir,
        DatasetPath = feedbackPath,
        OutputDir = Path.Combine(outDir, "kto"),
        Beta = o.Beta,
        DesirableWeight = dw,
        UndesirableWeight = uw,
        LossType = o.LossType,
        PrecomputeRefLogProbs = o.PrecomputeRef,
        UsePeft = o.Lora,
        LoraTargetModules = o.Lora ? [LoraOptions.AllLinear] : null,
        LearningRate = o.LearningRate,
        LrSchedulerType = "cosine",
        WarmupRatio = 0.1,
        PerDeviceTrainBatchSize = o.BatchSize,
        NumTrainEpochs = o.Epochs,
        MaxLength = 16,
        MaxPromptLength = 8,
        LoggingSteps = DemoOptions.LoggingSteps,
        SaveSteps = int.MaxValue,
        Seed = o.Seed,
        NumThreads = o.Threads,
        Device = o.Device,
        OverwriteOutputDir = true,
    };

    private static List<string> Notes(EvalReport before, EvalReport after, int nD, int nU, double dw, double uw, KtoConfig c, TrainResult r) =>
    [
        Inv($"greedy accuracy (held-out, {after.Prompts} prompts): {before.GreedyAccuracy:P1} → {after.GreedyAccuracy:P1} ({(after.GreedyAccuracy - before.GreedyAccuracy) * 100:+0.0;-0.0} points)"),
        Inv($"desirable rate under sampling (T=1): {before.SampledDesirableRate:P1} → {after.SampledDesirableRate:P1}"),
        Inv($"mean log-ratio vs reference of sampled answers: desirable {Fmt(after.MeanLogRatioDesirable)}, undesirable {Fmt(after.MeanLogRatioUndesirable)}"),
        Inv($"feedback: {nD} desirable / {nU} undesirable ({(double)nD / (nD + nU):P0}), weights {dw} / {uw}"),
        Inv($"{c.LossType.ToName()}, β {c.Beta}, lr {c.LearningRate}, batch {c.PerDeviceTrainBatchSize}, {r.GlobalStep} steps{(c.PrecomputeRefLogProbs ? ", precomputed reference" : "")}{(c.UsePeft ? $", LoRA r {c.LoraR} alpha {c.LoraAlpha} on {string.Join(", ", c.LoraTargetModules ?? [])}" : "")}"),
    ];

    private static string Fmt(double? v) => v is double d ? d.ToString("+0.00;-0.00", CultureInfo.InvariantCulture) : "n/a";

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private string WriteSummary(string outDir, string refDir, EvalReport before, EvalReport after, List<string> notes, string plot)
    {
        _times.Add((_currentStage, _stageClock.Elapsed.TotalSeconds)); // the report stage itself
        var sb = new StringBuilder();
        sb.AppendLine("KTO demo: 2-digit addition, feedback from a checker");
        sb.AppendLine(Inv($"reference: {refDir}"));
        foreach (string n in notes) sb.AppendLine(n);
        sb.AppendLine(Inv($"before: {before}"));
        sb.AppendLine(Inv($"after:  {after}"));
        sb.AppendLine(Inv($"curves: {plot}"));
        sb.AppendLine(Inv($"wall time: {_total.Elapsed.TotalSeconds:0} s ({string.Join(", ", _times.Select(t => Inv($"{ShortName(t.Stage)} {t.Seconds:0.0} s")))})"));
        string path = Path.Combine(outDir, "summary.txt");
        AtomicFile.WriteText(path, sb.ToString());
        return path;
    }

    private static string ShortName(string stage) => stage.Split(' ')[0];

    private void WriteJson(string outDir, string refDir, EvalReport before, EvalReport after, EvalOptions evalOptions, int nD, int nU, double dw, double uw, KtoConfig c, TrainResult r)
    {
        var json = new JsonObject
        {
            ["reference"] = refDir,
            ["policy"] = r.FinalCheckpoint,
            ["loss_type"] = c.LossType.ToName(),
            ["precompute_ref_log_probs"] = c.PrecomputeRefLogProbs,
            ["use_peft"] = c.UsePeft,
            ["learning_rate"] = c.LearningRate,
            ["desirable_weight"] = dw,
            ["undesirable_weight"] = uw,
            ["feedback_desirable"] = nD,
            ["feedback_undesirable"] = nU,
            ["steps"] = r.GlobalStep,
            ["before"] = before.ToJson(refDir, null, evalOptions),
            ["after"] = after.ToJson(r.FinalCheckpoint, refDir, evalOptions),
            ["wall_seconds"] = Math.Round(_total.Elapsed.TotalSeconds, 1),
        };
        AtomicFile.WriteText(Path.Combine(outDir, "demo.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
