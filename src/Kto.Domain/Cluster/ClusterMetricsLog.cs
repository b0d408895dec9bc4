using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Domain.Cluster;

/// <summary>
/// A cluster run's <c>metrics.jsonl</c> as a projection of its journal: each line is a pure function of the
/// <see cref="StepCommitted"/> events of one logging window (their metric sums, grad norm and step times), so a line
/// that could not be written (a full disk, a crash) is written later from the same events, and a window cut by a
/// coordinator restart still averages all of its steps. Windows end at every multiple of <c>logging_steps</c> and at
/// the last step; the columns are <see cref="StepMetrics.ToDictionary"/>'s TRL names plus <c>grad_norm</c> (of the
/// window's last step), <c>learning_rate</c>, <c>examples/s</c> and <c>tokens/s</c> (over the sum of the window's
/// step times) and <c>trainers</c> (members of the last step).
/// </summary>
public sealed class ClusterMetricsLog
{
    private readonly MetricsLog _log;
    private readonly RunSpec _spec;
    private readonly int _loggingSteps;
    private readonly LrSchedule _schedule;
    private readonly int _stepsPerEpoch;
    private readonly SortedDictionary<int, StepCommitted> _pending = [];
    private readonly SortedDictionary<int, EvaluationRecorded> _pendingEvaluations = [];
    private readonly HashSet<int> _evaluated;

    private ClusterMetricsLog(RunSpec spec, KtoConfig config, int loggedStep)
    {
        _spec = spec;
        _log = new MetricsLog(config.OutputDir);
        _loggingSteps = Math.Max(1, config.LoggingSteps);
        _schedule = LrSchedule.For(config, spec.TotalSteps);
        _stepsPerEpoch = spec.Plan().StepsPerEpoch;
        LoggedStep = loggedStep;
        _evaluated = [.. _log.EvaluatedSteps()];
    }

    /// <summary>Takes an evaluation (its line is written by the next <see cref="Flush"/>, once: a line already in the file is not written again).</summary>
    public void AddEvaluation(EvaluationRecorded evaluation)
    {
        if (!_evaluated.Contains(evaluation.Step)) _pendingEvaluations[evaluation.Step] = evaluation;
    }

    /// <summary>
    /// Opens the log of a run with <paramref name="committed"/> committed steps: lines past it and lines cut short are
    /// dropped, and the last line's step becomes <see cref="LoggedStep"/>.
    /// </summary>
    /// <param name="spec">The run.</param>
    /// <param name="config">Its config (output_dir, logging_steps, the schedule).</param>
    /// <param name="committed">Steps committed.</param>
    /// <param name="firstStep">The step the run's own commits start at (a run continued from a checkpoint has none
    /// before it): lines start after it.</param>
    /// <exception cref="IOException">output_dir cannot be written.</exception>
    public static ClusterMetricsLog Open(RunSpec spec, KtoConfig config, int committed, int firstStep = 0)
    {
        Directory.CreateDirectory(config.OutputDir);
        var log = new MetricsLog(config.OutputDir);
        log.TruncateAfter(committed);
        return new ClusterMetricsLog(spec, config, Math.Max(firstStep, Math.Min(committed, log.LastStep())));
    }

    /// <summary>The file.</summary>
    public string FilePath => _log.FilePath;

    /// <summary>Steps (counted from 1) the file holds lines up to; the next lines need every commit of a 0-based step ≥ this.</summary>
    public int LoggedStep { get; private set; }

    /// <summary>Windows skipped because their commits carry no metrics (journals written before commits recorded them).</summary>
    public int SkippedWindows { get; private set; }

    /// <summary>Takes a committed step (ignored when its window is written already).</summary>
    public void Add(StepCommitted commit)
    {
        if (commit.Step >= LoggedStep) _pending[commit.Step] = commit;
    }

    /// <summary>Whether the commits of <paramref name="step"/> (0-based) and later are all that is still missing.</summary>
    public bool Holds(int step) => _pending.ContainsKey(step);

    /// <summary>The last step (counted from 1) of the window after <paramref name="logged"/>.</summary>
    public int WindowEnd(int logged) => Math.Min(_spec.TotalSteps, (logged / _loggingSteps + 1) * _loggingSteps);

    /// <summary>Writes every window whose commits are all here; returns the lines written.</summary>
    /// <exception cref="IOException">A line could not be written; it stays pending and is written by a later call.</exception>
    public int Flush()
    {
        int written = WriteEvaluations();
        while (LoggedStep < _spec.TotalSteps)
        {
            int end = WindowEnd(LoggedStep);
            var window = new List<StepCommitted>(end - LoggedStep);
            for (int s = LoggedStep; s < end; s++)
            {
                if (!_pending.TryGetValue(s, out var c)) return written;
                window.Add(c);
            }
            if (Line(window) is { } metrics) _log.Append(end, (double)end / _stepsPerEpoch, metrics);
            else SkippedWindows++;
            foreach (StepCommitted c in window) _pending.Remove(c.Step);
            LoggedStep = end;
            written++;
            written += WriteEvaluations();
        }
        return written;
    }

    /// <summary>
    /// Writes the pending evaluation lines whose step no unwritten training line precedes (every window ending at or
    /// before it is written), so the file reads in step order with a step's training line before its evaluation, as
    /// <c>kto train</c> writes them.
    /// </summary>
    private int WriteEvaluations()
    {
        int written = 0;
        foreach (EvaluationRecorded e in _pendingEvaluations.Values.ToList())
        {
            if (LoggedStep < _spec.TotalSteps && WindowEnd(LoggedStep) <= e.Step) break;
            _log.Append(e.Step, (double)e.Step / _stepsPerEpoch, new Dictionary<string, double>(e.Figures));
            _pendingEvaluations.Remove(e.Step);
            _evaluated.Add(e.Step);
            written++;
        }
        return written;
    }

    /// <summary>The metrics of one window of commits (steps in order), or null if any lacks its metric sums.</summary>
    public Dictionary<string, double>? Line(IReadOnlyList<StepCommitted> window)
    {
        if (window.Count == 0 || window.Any(c => c.Metrics is null)) return null;
        StepMetrics sum = StepMetrics.Zero;
        double seconds = 0;
        foreach (StepCommitted c in window)
        {
            sum += MetricVector.To(c.Metrics!);
            seconds += c.Seconds;
        }
        StepCommitted last = window[^1];
        var metrics = sum.ToDictionary();
        metrics["grad_norm"] = last.GradNorm;
        metrics["learning_rate"] = _schedule.At(last.Step);
        double perSecond = seconds > 0 ? 1 / seconds : double.NaN; // null in the file when no step time was recorded
        metrics["examples/s"] = window.Count * (double)_spec.GlobalBatchSize * _spec.Accumulation * perSecond;
        metrics["tokens/s"] = sum.Tokens * perSecond;
        metrics["trainers"] = last.Members.Count;
        return metrics;
    }
}
