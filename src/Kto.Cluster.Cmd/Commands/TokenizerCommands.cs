using System.CommandLine;
using System.Text;
using System.Text.Json;
using Kto.Domain.Checkpoints;
using Kto.Domain.Data;
using Kto.Domain.Model;
using Kto.Domain.Options;
using Kto.Domain.Tokenization;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto tokenize</c> and <c>kto data preview</c>: what a checkpoint's tokenizer and chat template make of text and data.</summary>
internal static class TokenizerCommands
{
    private static Option<string> TokenizerOption() => new("--tokenizer")
    {
        Description = "a model directory (its tokenizer.json, or the built-in tokenizer its config.json names), a directory with a tokenizer.json, or byte / gpt2",
        Required = true,
    };

    /// <summary><c>kto tokenize --tokenizer DIR --in texts.jsonl --out ids.jsonl</c>.</summary>
    public static Command Tokenize()
    {
        var tokenizer = TokenizerOption();
        var input = new Option<FileInfo>("--in") { Description = "JSONL, one {\"text\": …} per line", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "JSONL, one {\"ids\": […]} per input line (no special tokens added)", Required = true };
        var cmd = new Command("tokenize", "token ids of texts, as tokenizer.encode(text, add_special_tokens=False)") { tokenizer, input, output };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            ITextTokenizer tok = Resolve(parse.GetValue(tokenizer)!);
            string inPath = parse.GetValue(input)!.FullName, outPath = parse.GetValue(output)!.FullName;
            if (!File.Exists(inPath)) throw new DataException($"{inPath}: file not found");
            int lines = 0, tokens = 0;
            AtomicFile.Write(outPath, stream =>
            {
                using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
                foreach (var (line, text) in Texts(inPath))
                {
                    int[] ids = tok.Encode(text);
                    writer.Write("{\"ids\":");
                    writer.Write(JsonSerializer.Serialize(ids));
                    writer.Write("}\n");
                    lines = line;
                    tokens += ids.Length;
                }
            });
            Console.Error.WriteLine($"tokenized {lines} line(s) into {tokens} tokens with {tok.Name}: {outPath}");
            return 0;
        }));
        return cmd;
    }

    /// <summary><c>kto data preview --tokenizer DIR --data FILE [--max-length N --max-prompt-length N] --out FILE</c>.</summary>
    public static Command Preview()
    {
        var tokenizer = TokenizerOption();
        var data = new Option<FileInfo>("--data") { Description = "dataset (.jsonl or .parquet, TRL KTO formats)", Required = true };
        var maxLength = new Option<int>("--max-length") { Description = "max_length", DefaultValueFactory = _ => KtoDefaults.MaxLength };
        var maxPrompt = new Option<int>("--max-prompt-length") { Description = "max_prompt_length", DefaultValueFactory = _ => KtoDefaults.MaxPromptLength };
        var template = new Option<FileInfo?>("--chat-template") { Description = "a .jinja chat template to use instead of the model's (as a run config's chat_template)" };
        var output = new Option<FileInfo>("--out") { Description = "JSONL: prompt_text, completion_text, prompt_ids, completion_ids, label and source_row of every example", Required = true };
        var cmd = new Command("preview", "every example as the trainer sees it: chat template applied, tokenized, EOS/BOS added, truncated")
        {
            tokenizer, data, maxLength, maxPrompt, template, output,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            string spec = parse.GetValue(tokenizer)!;
            ITextTokenizer tok = Resolve(spec);
            LmConfig? model = File.Exists(Path.Combine(spec, ModelCheckpoint.ConfigFile)) ? ModelCheckpoint.LoadConfig(spec) : null;
            string? chatTemplate = parse.GetValue(template) is { } file ? File.ReadAllText(file.FullName) : null;
            var options = new DatasetLoadOptions(parse.GetValue(maxLength), parse.GetValue(maxPrompt), null, ModelVocabSize: model?.VocabSize, ChatTemplate: chatTemplate);
            LoadedDataset dataset = KtoDatasetLoader.Load(parse.GetValue(data)!.FullName, tok, options);
            foreach (string w in dataset.Warnings) Console.Error.WriteLine($"warning: {w}");
            string outPath = parse.GetValue(output)!.FullName;
            AtomicFile.Write(outPath, stream =>
            {
                using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
                foreach (KtoExample e in dataset.Examples)
                {
                    var row = new Dictionary<string, object>
                    {
                        ["prompt_text"] = tok.DecodeWithSpecialTokens(e.PromptIds),
                        ["completion_text"] = tok.DecodeWithSpecialTokens(e.CompletionIds),
                        ["prompt_ids"] = e.PromptIds,
                        ["completion_ids"] = e.CompletionIds,
                        ["label"] = e.Label,
                        ["source_row"] = e.SourceRow,
                    };
                    writer.Write(JsonSerializer.Serialize(row, PreviewJson));
                    writer.Write('\n');
                }
            });
            Console.Error.WriteLine($"{dataset.Examples.Count} example(s) of {dataset.Format} data as the trainer sees them ({tok.Name}): {outPath}");
            return 0;
        }));
        return cmd;
    }

    private static readonly JsonSerializerOptions PreviewJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The tokenizer <paramref name="spec"/> names: built-in by name, a model directory's, or a bare tokenizer.json directory's.</summary>
    /// <exception cref="InvalidDataException">Nothing usable is there.</exception>
    private static ITextTokenizer Resolve(string spec)
    {
        if (TokenizerRegistry.Names.Contains(spec)) return TokenizerRegistry.Get(spec);
        if (File.Exists(Path.Combine(spec, ModelCheckpoint.ConfigFile))) return TokenizerRegistry.ForModel(spec, ModelCheckpoint.LoadConfig(spec));
        if (HfTokenizer.IsIn(spec)) return HfTokenizer.Load(spec);
        throw new InvalidDataException($"--tokenizer {spec}: neither {string.Join(" nor ", TokenizerRegistry.Names)}, a model directory, nor a directory with {HfTokenizer.TokenizerFile}");
    }

    /// <summary>The "text" of every line of a JSONL file, with its 1-based line number; errors name file, line and field.</summary>
    private static IEnumerable<(int Line, string Text)> Texts(string path)
    {
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonElement root;
            try
            {
                root = JsonDocument.Parse(line).RootElement;
            }
            catch (JsonException e)
            {
                throw new DataException($"{path}:line {number}: malformed JSON: {e.Message}", e);
            }
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("text", out JsonElement text))
                throw new DataException($"{path}:line {number}: field \"text\": expected a string, found no such field");
            if (text.ValueKind != JsonValueKind.String)
                throw new DataException($"{path}:line {number}: field \"text\": expected a string, found {text.ValueKind.ToString().ToLowerInvariant()}");
            yield return (number, text.GetString()!);
        }
    }
}
