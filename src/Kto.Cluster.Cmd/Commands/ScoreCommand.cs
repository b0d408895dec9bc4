using System.CommandLine;
using System.Globalization;
using System.Text;
using Kto.Cluster.Cmd.Terminal;
using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Devices;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;
using Kto.Domain.Training;
using TorchSharp;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto score</c>: the summed completion log-prob of every example of a dataset under a checkpoint, one JSONL
/// line per example in dataset order.
/// </summary>
internal static class ScoreCommand
{
    /// <summary>Default examples per forward pass.</summary>
    private const int DefaultBatchSize = 8;

    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "checkpoint directory (config.json + model.safetensors)", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "dataset (.jsonl or .parquet, TRL KTO formats)", Required = true };
        var output = new Option<FileInfo?>("--out") { Description = "output JSONL (default: stdout)" };
        var batch = new Option<int>("--batch-size") { Description = "examples per forward pass", DefaultValueFactory = _ => DefaultBatchSize };
        var maxLength = new Option<int>("--max-length") { Description = "max_length (capped at the model's n_positions)", DefaultValueFactory = _ => KtoDefaults.MaxLength };
        var maxPrompt = new Option<int>("--max-prompt-length") { Description = "max_prompt_length", DefaultValueFactory = _ => KtoDefaults.MaxPromptLength };
        var adapter = CommonOptions.Adapter();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads(0);
        var cmd = new Command("score", "write log π(completion | prompt), summed over completion tokens, for every example")
        {
            model, adapter, data, output, batch, maxLength, maxPrompt, device, threads,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() => Run(
            parse.GetValue(model)!.FullName, parse.GetValue(data)!.FullName, parse.GetValue(output)?.FullName,
            parse.GetValue(batch), parse.GetValue(maxLength), parse.GetValue(maxPrompt), parse.GetValue(device)!, parse.GetValue(threads), parse.GetValue(adapter)?.FullName)));
        return cmd;
    }

    private static int Run(string modelDir, string dataPath, string? outPath, int batchSize, int maxLength, int maxPrompt, string deviceName, int threads, string? adapterDir)
    {
        if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}");
        if (threads > 0) torch.set_num_threads(threads);
        var observer = new ConsoleObserver();
        torch.Device device = DeviceSpec.Resolve(deviceName);
        LmConfig config = ModelCheckpoint.LoadConfig(modelDir);
        ITextTokenizer tokenizer = TokenizerRegistry.ForModel(modelDir, config);
        var lengths = new DatasetLoadOptions(Math.Min(maxLength, config.MaxPositions), maxPrompt, null, ModelVocabSize: config.VocabSize);
        LoadedDataset dataset = KtoDatasetLoader.Load(dataPath, tokenizer, lengths);
        foreach (string w in dataset.Warnings) observer.Warn(w);
        if (dataset.DroppedNoRoom > 0) observer.Warn($"{dataset.DroppedNoRoom} example(s) not scored: no room for a completion within {lengths.MaxLength} tokens");

        using CausalLm model = CommonOptions.LoadModel(modelDir, adapterDir, device);
        model.eval();
        var examples = dataset.Examples;
        double[] logps = SequenceLogProbs.Score(model, examples.Select(e => (e.PromptIds, e.CompletionIds)).ToList(),
            tokenizer.EosTokenId, batchSize, device,
            n => observer.Progress(new ProgressUpdate("score", n, examples.Count, new Dictionary<string, double>())));

        using Stream stream = outPath is null ? Console.OpenStandardOutput() : File.Create(outPath);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false));
        for (int i = 0; i < examples.Count; i++)
        {
            KtoExample e = examples[i];
            writer.Write(string.Create(CultureInfo.InvariantCulture,
                $"{{\"index\":{i},\"source_row\":{e.SourceRow},\"label\":{(e.Label ? "true" : "false")},\"completion_tokens\":{e.CompletionIds.Length},\"logp\":{logps[i].ToString("R", CultureInfo.InvariantCulture)}}}\n"));
        }
        writer.Flush();
        if (outPath != null) observer.Info($"scored {examples.Count} examples into {outPath}");
        return 0;
    }
}
