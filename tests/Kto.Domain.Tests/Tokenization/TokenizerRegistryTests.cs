using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using Kto.Domain.Tokenization;

namespace Kto.Domain.Tests.Tokenization;

/// <summary>Which tokenizer a checkpoint directory gets, and the error when it has none.</summary>
public sealed class TokenizerRegistryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-tokreg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private LmConfig Llama(string? ktoTokenizer)
    {
        string tokenizerKey = ktoTokenizer is null ? "" : $", \"kto_tokenizer\": \"{ktoTokenizer}\"";
        File.WriteAllText(Path.Combine(_dir, "config.json"),
            $$"""{"model_type": "llama", "vocab_size": 300, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2{{tokenizerKey}}}""");
        return ModelCheckpoint.LoadConfig(_dir);
    }

    [Fact]
    public void ADirectoryWithoutATokenizerIsRefusedNamingWhatIsMissing()
    {
        var e = Assert.Throws<InvalidDataException>(() => TokenizerRegistry.ForModel(_dir, Llama(null)));
        Assert.Equal($"{_dir}: no tokenizer: neither tokenizer.json nor config.json's \"kto_tokenizer\" (gpt2 or byte)", e.Message);
        Assert.Contains("\"kto_tokenizer\" \"sentencepiece\" is unknown (known: gpt2, byte)",
            Assert.Throws<InvalidDataException>(() => TokenizerRegistry.ForModel(_dir, Llama("sentencepiece"))).Message);
        Assert.Same(ByteTokenizer.Instance, TokenizerRegistry.ForModel(_dir, Llama("byte")));
    }

    [Fact]
    public void AMalformedConfigIsRefusedNamingTheFile()
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), "{\"model_type\": \"llama\",");
        Assert.Contains("config.json: malformed JSON", Assert.Throws<InvalidDataException>(() => ModelCheckpoint.LoadConfig(_dir)).Message);
        File.WriteAllText(Path.Combine(_dir, "config.json"), "{\"model_type\": \"gemma2\", \"vocab_size\": 8}");
        Assert.Contains("model_type \"gemma2\" is not supported (supported: gpt2, llama, mistral, qwen2, qwen3)",
            Assert.Throws<InvalidDataException>(() => ModelCheckpoint.LoadConfig(_dir)).Message);
    }

    [Fact]
    public void AnUnsupportedStoredDtypeIsRefusedNamingTheTensor()
    {
        byte[] header = System.Text.Encoding.UTF8.GetBytes("""{"model.norm.weight": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}""");
        string path = Path.Combine(_dir, "model.safetensors");
        using (var f = File.Create(path))
        {
            f.Write(BitConverter.GetBytes((long)header.Length));
            f.Write(header);
            f.Write(new byte[4]);
        }
        using var stream = File.OpenRead(path);
        Assert.Contains("tensor \"model.norm.weight\" has unsupported dtype \"F8_E4M3\"",
            Assert.Throws<InvalidDataException>(() => Safetensors.ReadHeader(stream, path)).Message);
    }
}
