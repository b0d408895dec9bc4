using Kto.Domain.Generation;
using Kto.Domain.Model;
using Kto.Domain.Tasks;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using static TorchSharp.torch;

namespace Kto.Domain.Evaluation;

/// <summary>
/// Grades a checkpoint on held-out prompts with a task's checker: greedy accuracy, the desirable rate of sampled
/// completions and, against a reference model, the mean log-ratio of those samples (overall and per checker label).
/// Deterministic for a given seed and batch size.
/// </summary>
public static class Evaluator
{
    /// <summary>Evaluates <paramref name="model"/> on <paramref name="prompts"/>.</summary>
    /// <param name="model">The policy to grade.</param>
    /// <param name="reference">The reference for log-ratios, or null.</param>
    /// <param name="tokenizer">The models' tokenizer.</param>
    /// <param name="task">The checker.</param>
    /// <param name="prompts">Held-out prompts (text).</param>
    /// <param name="options">Sampling settings.</param>
    /// <param name="device">Where to run.</param>
    /// <param name="progress">Receives (phase, done, total).</param>
    public static EvalReport Run(CausalLm model, CausalLm? reference, ITextTokenizer tokenizer, IVerifiableTask task,
        IReadOnlyList<string> prompts, EvalOptions options, Device device, Action<string, int, int>? progress = null)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts to evaluate", nameof(prompts));
        int[][] promptIds = prompts.Select(tokenizer.Encode).ToArray();
        int eos = tokenizer.EosTokenId;

        var greedyOptions = new SamplingOptions(options.MaxNewTokens, 0, 0, 1.0, options.Seed);
        int[][][] greedy = Sampler.Generate(model, promptIds, greedyOptions, eos, options.BatchSize, device, n => progress?.Invoke("greedy", n, prompts.Count));
        int correct = prompts.Where((p, i) => task.IsCorrect(p, tokenizer.Decode(greedy[i][0]))).Count();

        var sampling = new SamplingOptions(options.MaxNewTokens, options.Temperature, 0, 1.0, options.Seed, options.SamplesPerPrompt);
        int[][][] sampled = Sampler.Generate(model, promptIds, sampling, eos, options.BatchSize, device, n => progress?.Invoke("sample", n, prompts.Count * options.SamplesPerPrompt));
        var flat = new List<(int[] Prompt, int[] Completion, bool Good)>();
        for (int i = 0; i < prompts.Count; i++)
            foreach (int[] completion in sampled[i])
                flat.Add((promptIds[i], [.. completion, eos], task.IsCorrect(prompts[i], tokenizer.Decode(completion))));
        int good = flat.Count(s => s.Good);

        double? all = null, desirable = null, undesirable = null;
        if (reference is not null)
        {
            var seqs = flat.Select(s => (s.Prompt, s.Completion)).ToList();
            double[] policyLogps = SequenceLogProbs.Score(model, seqs, eos, options.BatchSize, device, n => progress?.Invoke("log-ratio", n, seqs.Count * 2));
            double[] refLogps = SequenceLogProbs.Score(reference, seqs, eos, options.BatchSize, device, n => progress?.Invoke("log-ratio", seqs.Count + n, seqs.Count * 2));
            double[] ratio = policyLogps.Select((p, k) => p - refLogps[k]).ToArray();
            all = ratio.Average();
            desirable = Mean(ratio.Where((_, k) => flat[k].Good));
            undesirable = Mean(ratio.Where((_, k) => !flat[k].Good));
        }
        return new EvalReport(task.Name, prompts.Count, (double)correct / prompts.Count, (double)good / flat.Count, flat.Count, all, desirable, undesirable);
    }

    private static double? Mean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? null : list.Average();
    }
}
