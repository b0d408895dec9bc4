using Kto.Domain.Tokenization;

namespace Kto.Domain.Tests.Tokenization;

public class TokenizerTests
{
    [Fact]
    public void ByteTokenizerRoundTripsAnyText()
    {
        var t = ByteTokenizer.Instance;
        string text = "héllo, 世界 🙂\n";
        int[] ids = t.Encode(text);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(text, t.Decode(ids.Append(ByteTokenizer.Eos).ToArray()));
        Assert.Equal(257, t.VocabSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([300]));
    }

    [Fact]
    public void Gpt2TokenizerGivesGpt2Ids()
    {
        var t = Gpt2Tokenizer.Instance;
        // Ids as GPT-2's tokenizer gives them: "Hello" = 15496, " world" = 995.
        Assert.Equal([15496, 995], t.Encode("Hello world"));
        Assert.Equal(50257, t.VocabSize);
        Assert.Equal(50256, t.EosTokenId);
        Assert.Equal("Hello world", t.Decode([15496, 995, 50256]));
    }

    [Fact]
    public void RegistryFindsByCheckpointName()
    {
        Assert.Same(ByteTokenizer.Instance, TokenizerRegistry.Get("byte"));
        Assert.Same(Gpt2Tokenizer.Instance, TokenizerRegistry.Get("gpt2"));
        var e = Assert.Throws<ArgumentException>(() => TokenizerRegistry.Get("llama"));
        Assert.Contains("gpt2", e.Message);
    }
}
