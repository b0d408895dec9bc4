using Kto.Domain.Model;
using Kto.Domain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Generation;

/// <summary>
/// Draws completions from a causal LM, batched. The model has no attention mask, so only sequences whose prompts
/// have the same length share a batch; all rows of a batch advance together, and a row that has finished leaves
/// the batch. There is no KV cache: each step runs the whole prefix (completions here are short) but forms logits
/// for the last position only.
/// </summary>
/// <remarks>
/// Greedy decoding takes the argmax on the device (the lowest id among equal logits). Sampling draws on the host
/// from the probabilities at the temperature (computed on the device), with one <see cref="SplitMix64"/> stream per
/// (seed, prompt index, sample index). So a completion does not depend on the batch size or on which other
/// sequences share its batch: results are identical across batch sizes, except where the float rounding of a
/// differently shaped forward pass tips a choice that sits on a tie (an argmax between two equal logits, or a draw
/// landing exactly on the boundary between two tokens).
/// </remarks>
public static class Sampler
{
    /// <summary>
    /// For each prompt, <see cref="SamplingOptions.NumSamples"/> completions: token ids WITHOUT the EOS. A
    /// completion ends at EOS, after <see cref="SamplingOptions.MaxNewTokens"/> tokens, or when prompt +
    /// completion fills the model's n_positions (a prompt that fills them already gets empty completions).
    /// Runs without gradient and in eval mode (the model's mode is restored afterwards).
    /// </summary>
    /// <param name="model">The causal LM.</param>
    /// <param name="prompts">Prompt token ids; each non-empty and at most n_positions long.</param>
    /// <param name="options">How to sample; validated here.</param>
    /// <param name="eosId">The end-of-sequence id.</param>
    /// <param name="batchSize">Most sequences per forward pass (≥ 1).</param>
    /// <param name="device">Where the model lives.</param>
    /// <param name="progress">Called after each batch with the (prompt, sample) completions finished so far, out of
    /// prompts × num_samples.</param>
    /// <returns><c>result[promptIndex][sampleIndex]</c>. Greedy decoding computes one completion per prompt and
    /// gives each sample its own copy.</returns>
    /// <exception cref="ArgumentException">Invalid options, batch size, EOS id or prompt.</exception>
    public static int[][][] Generate(CausalLm model, IReadOnlyList<int[]> prompts, SamplingOptions options,
        int eosId, int batchSize, Device device, Action<int>? progress = null) =>
        Generate(model, prompts, options, [eosId], batchSize, device, progress);

    /// <summary>As <see cref="Generate(CausalLm, IReadOnlyList{int[]}, SamplingOptions, int, int, Device, Action{int}?)"/>, a
    /// completion ending at the first of several stop ids (a checkpoint's generation_config.json may name several EOS ids); the stop id is not kept.</summary>
    public static int[][][] Generate(CausalLm model, IReadOnlyList<int[]> prompts, SamplingOptions options,
        IReadOnlyCollection<int> stopIds, int batchSize, Device device, Action<int>? progress = null)
    {
        options.Validate();
        LmConfig config = model.LmConfig;
        if (batchSize < 1) throw new ArgumentException($"batch size must be at least 1, got {batchSize}", nameof(batchSize));
        if (stopIds.Count == 0) throw new ArgumentException("at least one stop (EOS) id is needed", nameof(stopIds));
        foreach (int eosId in stopIds)
            if (eosId < 0 || eosId >= config.VocabSize)
                throw new ArgumentException($"EOS id {eosId} lies outside the vocabulary [0, {config.VocabSize})", nameof(stopIds));
        var stops = new HashSet<int>(stopIds);
        CheckPrompts(prompts, config);

        int distinct = options.IsGreedy ? 1 : options.NumSamples;
        var completions = new int[prompts.Count][][];
        for (int i = 0; i < prompts.Count; i++) completions[i] = new int[options.NumSamples][];

        var chooser = new TokenChooser(options, config.VocabSize);
        int finished = 0;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Length).OrderBy(g => g.Key))
            {
                var rows = group.SelectMany(p => Enumerable.Range(0, distinct).Select(s => new Row(p, s))).ToList();
                for (int start = 0; start < rows.Count; start += batchSize)
                {
                    var batch = rows.GetRange(start, Math.Min(batchSize, rows.Count - start));
                    RunBatch(model, prompts, batch, group.Key, options, stops, device, chooser, completions);
                    finished += batch.Count * (options.NumSamples / distinct);
                    progress?.Invoke(finished);
                }
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        if (options.IsGreedy)
            foreach (int[][] samples in completions)
                for (int s = 1; s < samples.Length; s++) samples[s] = (int[])samples[0].Clone();
        return completions;
    }

    /// <summary>One sequence being generated: which prompt, which sample.</summary>
    private sealed record Row(int Prompt, int Sample);

    private static void CheckPrompts(IReadOnlyList<int[]> prompts, LmConfig config)
    {
        for (int i = 0; i < prompts.Count; i++)
        {
            int[] p = prompts[i] ?? throw new ArgumentException($"prompt {i} is null", nameof(prompts));
            if (p.Length == 0)
                throw new ArgumentException($"prompt {i} is empty: the model needs at least one token to condition on", nameof(prompts));
            if (p.Length > config.MaxPositions)
                throw new ArgumentException($"prompt {i} has {p.Length} tokens, more than the model's {config.MaxPositionsKey} = {config.MaxPositions}", nameof(prompts));
            foreach (int id in p)
                if (id < 0 || id >= config.VocabSize)
                    throw new ArgumentException($"prompt {i} holds token id {id}, outside the vocabulary [0, {config.VocabSize})", nameof(prompts));
        }
    }

    /// <summary>Generates the completions of <paramref name="batch"/>, whose prompts all have <paramref name="promptLength"/> tokens.</summary>
    private static void RunBatch(CausalLm model, IReadOnlyList<int[]> prompts, List<Row> batch, int promptLength,
        SamplingOptions options, HashSet<int> stops, Device device, TokenChooser chooser, int[][][] completions)
    {
        int vocab = model.LmConfig.VocabSize;
        int budget = Math.Min(options.MaxNewTokens, model.LmConfig.MaxPositions - promptLength);
        var generated = batch.Select(_ => new List<int>(budget)).ToArray();
        var streams = batch.Select(r => SampleStream.For(options.Seed, r.Prompt, r.Sample)).ToArray();
        var active = Enumerable.Range(0, batch.Count).ToList();

        for (int step = 0; step < budget && active.Count > 0; step++)
        {
            int length = promptLength + step;
            long[] ids = Prefixes(prompts, batch, generated, active, length);
            long[]? greedy = options.IsGreedy ? GreedyTokens(model, ids, active.Count, length, device) : null;
            float[]? probs = options.IsGreedy ? null : Probabilities(model, ids, active.Count, length, options.Temperature, device);
            var still = new List<int>(active.Count);
            for (int a = 0; a < active.Count; a++)
            {
                int r = active[a];
                int token = greedy is not null ? (int)greedy[a] : chooser.Choose(probs.AsSpan(a * vocab, vocab), ref streams[r]);
                if (stops.Contains(token)) continue;
                generated[r].Add(token);
                still.Add(r);
            }
            active = still;
        }
        for (int r = 0; r < batch.Count; r++) completions[batch[r].Prompt][batch[r].Sample] = [.. generated[r]];
    }

    /// <summary>The (rows × length) ids of the active rows: prompt, then the tokens generated so far.</summary>
    private static long[] Prefixes(IReadOnlyList<int[]> prompts, List<Row> batch, List<int>[] generated, List<int> active, int length)
    {
        var ids = new long[active.Count * length];
        for (int a = 0; a < active.Count; a++)
        {
            int r = active[a];
            int[] prompt = prompts[batch[r].Prompt];
            int offset = a * length;
            for (int j = 0; j < prompt.Length; j++) ids[offset + j] = prompt[j];
            for (int j = 0; j < generated[r].Count; j++) ids[offset + prompt.Length + j] = generated[r][j];
        }
        return ids;
    }

    /// <summary>The last position's logits of (rows, length) ids: (rows, V), on the device.</summary>
    private static Tensor LastLogits(CausalLm model, long[] ids, int rows, int length, Device device)
    {
        Tensor x = torch.tensor(ids, [rows, length], ScalarType.Int64, device);
        return model.Logits(model.HiddenStates(x).select(1, length - 1));
    }

    /// <summary>The argmax of each row's last logits (torch returns the first of equal maxima).</summary>
    private static long[] GreedyTokens(CausalLm model, long[] ids, int rows, int length, Device device)
    {
        using var scope = torch.NewDisposeScope();
        return LastLogits(model, ids, rows, length, device).argmax(-1).cpu().data<long>().ToArray();
    }

    /// <summary>softmax(last logits / temperature) of each row, on the host as (rows × V).</summary>
    private static float[] Probabilities(CausalLm model, long[] ids, int rows, int length, double temperature, Device device)
    {
        using var scope = torch.NewDisposeScope();
        Tensor logits = LastLogits(model, ids, rows, length, device).to_type(ScalarType.Float64);
        // In double and shifted by the row maximum: any positive temperature divides without overflow.
        Tensor probs = (logits - logits.amax([-1], keepdim: true)).DividedBy(temperature).softmax(-1);
        // Flattened first: TorchSharp copies a 1-D tensor out far faster than a 2-D one.
        return probs.to_type(ScalarType.Float32).flatten().cpu().data<float>().ToArray();
    }
}
