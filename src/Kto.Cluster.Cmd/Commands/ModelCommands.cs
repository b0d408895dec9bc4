using System.CommandLine;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Tokenization;
using TorchSharp;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto model init</c>: a freshly initialised GPT checkpoint of a chosen size.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "checkpoint directory to write", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "byte or gpt2", DefaultValueFactory = _ => ByteTokenizer.TokenizerName };
        var layers = new Option<int>("--layers") { Description = "n_layer", DefaultValueFactory = _ => 2 };
        var heads = new Option<int>("--heads") { Description = "n_head", DefaultValueFactory = _ => 2 };
        var width = new Option<int>("--width") { Description = "n_embd", DefaultValueFactory = _ => 64 };
        var positions = new Option<int>("--positions") { Description = "n_positions (longest sequence)", DefaultValueFactory = _ => 128 };
        var seed = new Option<int>("--seed") { Description = "initialisation seed", DefaultValueFactory = _ => 0 };
        var init = new Command("init", "write a randomly initialised GPT-2-architecture checkpoint")
        {
            output, tokenizer, layers, heads, width, positions, seed,
        };
        init.SetAction(parse => CommonOptions.Guard(() =>
        {
            ITextTokenizer tok = TokenizerRegistry.Get(parse.GetValue(tokenizer)!);
            var config = new GptConfig(tok.VocabSize, parse.GetValue(positions), parse.GetValue(width), parse.GetValue(layers), parse.GetValue(heads), Tokenizer: tok.Name);
            config.Validate();
            using var generator = new torch.Generator((ulong)parse.GetValue(seed));
            using var model = new GptLmHeadModel(config, generator);
            string dir = parse.GetValue(output)!.FullName;
            ModelCheckpoint.Save(model, dir);
            long parameters = model.parameters().Sum(p => p.numel());
            Console.WriteLine($"wrote {dir}: {parameters:N0} parameters, {config.NLayer} layers × {config.NEmbd} wide, {config.NHead} heads, {config.NPositions} positions, tokenizer {tok.Name}");
            return 0;
        }));
        return new Command("model", "model checkpoints") { init };
    }
}
