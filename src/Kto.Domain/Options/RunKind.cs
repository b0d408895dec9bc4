namespace Kto.Domain.Options;

/// <summary>What a run config drives.</summary>
public enum RunKind
{
    /// <summary><c>kto train</c>: preference training from binary feedback.</summary>
    Kto,

    /// <summary><c>kto sft</c>: supervised fine-tuning on prompt/completion pairs (reference models are made this way).</summary>
    Sft,
}

/// <summary>Defaults where supervised fine-tuning differs from KTO (TRL's <c>SFTConfig</c>).</summary>
public static class SftDefaults
{
    /// <summary>TRL SFTConfig.learning_rate.</summary>
    public const double LearningRate = 2e-5;

    /// <summary>Where an SFT run writes when output_dir is not given.</summary>
    public const string OutputDir = "runs/sft";

    /// <summary>A config holding SFT's defaults.</summary>
    public static KtoConfig Config => new() { LearningRate = LearningRate, OutputDir = OutputDir };
}
