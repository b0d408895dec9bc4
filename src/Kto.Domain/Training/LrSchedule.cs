namespace Kto.Domain.Training;

/// <summary>
/// Learning rate per optimizer step, as Hugging Face's schedulers compute it: step s (0-based) uses
/// <c>lr · λ(s)</c>, with a linear warm-up λ = s / warmup, then "linear" decay to 0 at the last step,
/// "cosine" half-cycle decay, or "constant".
/// </summary>
/// <param name="PeakLr">learning_rate.</param>
/// <param name="Kind">lr_scheduler_type.</param>
/// <param name="WarmupSteps">Warm-up steps.</param>
/// <param name="TotalSteps">Optimizer steps in the run.</param>
public sealed record LrSchedule(double PeakLr, string Kind, int WarmupSteps, int TotalSteps)
{
    /// <summary>Builds the schedule of a run: warmup_steps if set, else ⌈warmup_ratio · total⌉.</summary>
    public static LrSchedule For(Options.KtoConfig c, int totalSteps)
    {
        int warmup = c.WarmupSteps > 0 ? c.WarmupSteps : (int)Math.Ceiling(c.WarmupRatio * totalSteps);
        return new LrSchedule(c.LearningRate, c.LrSchedulerType, warmup, totalSteps);
    }

    /// <summary>The learning rate of optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(int step)
    {
        bool warmingUp = step < WarmupSteps && Kind != "constant";
        if (warmingUp) return PeakLr * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            "linear" => PeakLr * Math.Max(0, 1 - progress),
            "cosine" => PeakLr * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * progress))),
            "constant" or "constant_with_warmup" => PeakLr,
            _ => throw new InvalidOperationException($"unknown lr_scheduler_type \"{Kind}\""),
        };
    }
}
