using System.CommandLine;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Devices;
using Kto.Domain.Generation;
using Kto.Domain.Model;
using Kto.Domain.Tasks;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto generate</c>: completions of every prompt of a JSONL file under a checkpoint, one JSONL line per sample
/// in prompt order.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "checkpoint directory (config.json + model.safetensors)", Required = true };
        var prompts = new Option<FileInfo>("--prompts") { Description = "JSONL with a \"prompt\" string per line (other fields ignored)", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "output JSONL: {prompt_index, sample, prompt, completion} per sample", Required = true };
        var samples = new Option<int>("--num-samples") { Description = "completions per prompt", DefaultValueFactory = _ => SamplingDefaults.NumSamples };
        var temperature = new Option<double>("--temperature") { Description = "softmax temperature; 0 = greedy (argmax)", DefaultValueFactory = _ => SamplingDefaults.Temperature };
        var topK = new Option<int>("--top-k") { Description = "keep the k likeliest tokens; 0 = off", DefaultValueFactory = _ => SamplingDefaults.TopK };
        var topP = new Option<double>("--top-p") { Description = "nucleus: keep the likeliest tokens up to this mass; 1 = off", DefaultValueFactory = _ => SamplingDefaults.TopP };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most tokens per completion", DefaultValueFactory = _ => SamplingDefaults.MaxNewTokens };
        var seed = new Option<long>("--seed") { Description = "sampling seed (each prompt and sample draws from its own stream)", DefaultValueFactory = _ => SamplingDefaults.Seed };
        var batch = new Option<int>("--batch-size") { Description = "sequences per forward pass", DefaultValueFactory = _ => SamplingDefaults.BatchSize };
        var adapter = CommonOptions.Adapter();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads(0);
        var cmd = new Command("generate", "sample completions of every prompt under a checkpoint")
        {
            model, adapter, prompts, output, samples, temperature, topK, topP, maxNew, seed, batch, device, threads,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            var options = new SamplingOptions(parse.GetValue(maxNew), parse.GetValue(temperature), parse.GetValue(topK),
                parse.GetValue(topP), parse.GetValue(seed), parse.GetValue(samples));
            return Run(parse.GetValue(model)!.FullName, parse.GetValue(prompts)!.FullName, parse.GetValue(output)!.FullName,
                options, parse.GetValue(batch), parse.GetValue(device)!, parse.GetValue(threads), parse.GetValue(adapter)?.FullName);
        }));
        return cmd;
    }

    private static int Run(string modelDir, string promptsPath, string outPath, SamplingOptions options, int batchSize, string deviceName, int threads, string? adapterDir)
    {
        options.Validate();
        if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}");
        if (threads > 0) torch.set_num_threads(threads);
        var observer = new ConsoleObserver();
        torch.Device device = DeviceSpec.Resolve(deviceName);
        LmConfig config = ModelCheckpoint.LoadConfig(modelDir);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(modelDir, config);
        IReadOnlyList<PromptRow> rows = TaskJsonlReader.ReadPrompts(promptsPath);
        int[][] ids = [.. rows.Select(r => Tokenize(r, tokenizer, config, promptsPath))];

        using CausalLm model = CommonOptions.LoadModel(modelDir, adapterDir, device);
        int total = rows.Count * options.NumSamples;
        var noFigures = new Dictionary<string, double>();
        int[][][] completions = Sampler.Generate(model, ids, options, [.. tokenizer.StopTokenIds], batchSize, device,
            done => observer.Progress(new ProgressUpdate("generate", done, total, noFigures)));

        TaskJsonlWriter.WriteSamples(outPath,
            from p in Enumerable.Range(0, rows.Count)
            from s in Enumerable.Range(0, options.NumSamples)
            select new GeneratedSample(p, s, rows[p].Prompt, tokenizer.Decode(completions[p][s])));
        observer.Info($"wrote {total} samples of {rows.Count} prompts to {outPath}");
        return 0;
    }

    /// <summary>The prompt's ids, or an error naming its line when the model cannot continue it.</summary>
    private static int[] Tokenize(PromptRow row, ITextTokenizer tokenizer, LmConfig config, string path)
    {
        int[] ids = tokenizer.Encode(row.Prompt);
        if (ids.Length == 0) ids = [tokenizer.BosTokenId]; // as in training and scoring: an empty prompt is BOS
        if (ids.Length > config.MaxPositions)
            throw new DataException($"{path}:line {row.Line}: field \"prompt\": expected at most {config.MaxPositions} tokens (the model's {config.MaxPositionsKey}), found {ids.Length} tokens");
        return ids;
    }
}
