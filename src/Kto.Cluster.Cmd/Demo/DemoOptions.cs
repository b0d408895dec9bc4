using Kto.Domain.Loss;

namespace Kto.Cluster.Cmd.Demo;

/// <summary>Knobs of <c>kto demo</c>; the defaults are the published run (docs/demo.md).</summary>
internal sealed record DemoOptions
{
    /// <summary>Where everything is written.</summary>
    public string OutputDir { get; init; } = "runs/demo";
    /// <summary>The SFT reference checkpoint; null = the one shipped in models/addition-ref.</summary>
    public string? Reference { get; init; }
    /// <summary>Training prompts sampled for feedback.</summary>
    public int FeedbackPrompts { get; init; } = DefaultFeedbackPrompts;
    /// <summary>Completions sampled per feedback prompt.</summary>
    public int SamplesPerPrompt { get; init; } = 2;
    /// <summary>Share of desirable rows kept in the feedback (real feedback is imbalanced).</summary>
    public double DesirableShare { get; init; } = 0.3;
    /// <summary>Recommended class weights (TRL's rule) or both 1.0.</summary>
    public bool RecommendedWeights { get; init; } = true;
    /// <summary>The loss.</summary>
    public KtoLossType LossType { get; init; } = KtoLossType.Kto;
    /// <summary>Precompute reference log-probs.</summary>
    public bool PrecomputeRef { get; init; }

    /// <summary>Train LoRA adapters (r 16, alpha 32, every linear map) instead of the whole model.</summary>
    public bool Lora { get; init; }

    /// <summary>The learning rate of <c>--lora</c> when none is given: adapters need a larger step than full fine-tuning.</summary>
    public const double LoraLearningRate = 2e-3;
    /// <summary>β.</summary>
    public double Beta { get; init; } = 0.1;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 5e-4;
    /// <summary>Passes over the feedback.</summary>
    public double Epochs { get; init; } = 4;
    /// <summary>Examples per step.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Held-out prompts for evaluation.</summary>
    public int EvalPrompts { get; init; } = DefaultEvalPrompts;
    /// <summary>Seed of prompts, sampling and training.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>CPU threads (per trainer process when the KTO stage runs on a local cluster).</summary>
    public int Threads { get; init; }
    /// <summary>Trainer processes of the local cluster the KTO stage runs on; 0 trains in this process.</summary>
    public int Trainers { get; init; } = 2;
    /// <summary>Device.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Where the shipped SFT reference lives, relative to the repository root.</summary>
    public const string ShippedReference = "models/addition-ref";
    /// <summary>A metrics line every this many steps: enough points for the curves.</summary>
    public const int LoggingSteps = 5;
    /// <summary>Default number of feedback prompts.</summary>
    public const int DefaultFeedbackPrompts = 1500;
    /// <summary>Default number of held-out prompts.</summary>
    public const int DefaultEvalPrompts = 400;
}
