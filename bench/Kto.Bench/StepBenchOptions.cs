namespace Kto.Bench;

/// <summary>What <see cref="StepBenchmark"/> measures; defaults are the `kto bench step` defaults.</summary>
public sealed record StepBenchOptions
{
    /// <summary>gpt2, or a Llama-family model_type (llama, mistral, qwen2, qwen3) with an untied head, grouped-query attention (half as many kv heads) and a SwiGLU MLP of 8/3 × width.</summary>
    public string Arch { get; init; } = "gpt2";
    /// <summary>Our step forms the whole (B, T, V) logits instead of chunks of completion positions (to measure what chunking saves).</summary>
    public bool NaiveLogits { get; init; }
    /// <summary>Our step's precision: fp32, or bf16/fp16 (half compute copy, float32 masters, as the run config's bf16/fp16); the bare loop stays float32.</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>n_layer.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>n_head.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>n_embd.</summary>
    public int Width { get; init; } = 256;
    /// <summary>vocab_size.</summary>
    public int Vocab { get; init; } = 4096;
    /// <summary>Tokens per example (prompt + completion).</summary>
    public int Tokens { get; init; } = 64;
    /// <summary>Examples per step.</summary>
    public int Batch { get; init; } = 16;
    /// <summary>CPU threads for tensor math.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Measured steps per side (after warm-up).</summary>
    public int Steps { get; init; } = 10;
    /// <summary>Unmeasured steps per side first.</summary>
    public int WarmupSteps { get; init; } = 2;
    /// <summary>Use precomputed reference log-probs instead of a live reference model.</summary>
    public bool PrecomputedRef { get; init; }
    /// <summary>
    /// Train LoRA adapters (r 16, alpha 32, every linear map, no dropout) on the frozen base, the reference being the base
    /// (adapters off) as in a use_peft run; the bare loop trains the same adapters with torch.optim.AdamW.
    /// </summary>
    public bool Lora { get; init; }
    /// <summary>Our step under full_determinism: the batch cut into <see cref="DeterminismSlices"/> slices computed one by one, sums exact.</summary>
    public bool FullDeterminism { get; init; }
    /// <summary>determinism_slices.</summary>
    public int DeterminismSlices { get; init; } = 4;
    /// <summary>Device.</summary>
    public string Device { get; init; } = "cpu";
}
