using Kto.Domain.Checkpoints;
using Kto.Domain.Options;

namespace Kto.Domain.Cluster;

/// <summary>Where a new cluster run starts when its config names <c>resume_from_checkpoint</c>.</summary>
public static class ClusterResume
{
    /// <summary>
    /// The checkpoint <paramref name="spec"/>'s config resumes from, verified (every file's hash), or null when it
    /// names none. <c>"latest"</c> is the newest checkpoint in the run's output_dir; with none there the run starts
    /// from step 0, as <c>kto train</c> does.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint is missing or damaged, holds other data, or holds no step
    /// before the run's last (message names the directory and what differs).</exception>
    public static RunStartedFromCheckpoint? Point(RunSpec spec)
    {
        if (System.Text.Json.Nodes.JsonNode.Parse(spec.ConfigJson)?["resume_from_checkpoint"] is null) return null;
        KtoConfig c = spec.Config();
        if (c.ResumeFromCheckpoint is not { } given) return null;
        string? dir = given == KtoConfigReader.ResumeLatest ? TrainingCheckpoint.Latest(c.OutputDir) : given;
        if (dir is null) return null;
        if (!Directory.Exists(dir)) throw new InvalidDataException($"resume_from_checkpoint: {dir} does not exist");
        TrainerState state = TrainingCheckpoint.ReadVerified(dir);
        if (state.DatasetFingerprint != spec.DatasetFingerprint)
            throw new InvalidDataException($"resume_from_checkpoint: {dir} was trained on other data (fingerprint {state.DatasetFingerprint[..12]}…, this run's {spec.DatasetFingerprint[..12]}…)");
        if (state.GlobalStep <= 0 || state.GlobalStep >= spec.TotalSteps)
            throw new InvalidDataException($"resume_from_checkpoint: {dir} holds step {state.GlobalStep}; this run has {spec.TotalSteps} steps, so it must hold a step between 1 and {spec.TotalSteps - 1}");
        return new RunStartedFromCheckpoint(state.GlobalStep, Path.GetFullPath(dir), AtomicFile.Sha256(Path.Combine(dir, TrainingCheckpoint.StateFile)));
    }
}
