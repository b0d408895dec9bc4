namespace Kto.Domain.Tokenization;

/// <summary>Turns text into token ids and back. Implementations are immutable and thread-safe.</summary>
public interface ITextTokenizer
{
    /// <summary>The name recorded in checkpoints ("gpt2" or "byte"); see <see cref="TokenizerRegistry"/>.</summary>
    string Name { get; }

    /// <summary>Number of distinct ids, EOS included.</summary>
    int VocabSize { get; }

    /// <summary>The end-of-sequence id appended to text completions.</summary>
    int EosTokenId { get; }

    /// <summary>
    /// The beginning-of-sequence id: put before a completion whose prompt is empty, so that its first token has a
    /// position predicting it (Hugging Face's <c>bos_token_id</c>; GPT-2's is <c>&lt;|endoftext|&gt;</c>, 50256).
    /// </summary>
    int BosTokenId { get; }

    /// <summary>
    /// The ids put before a text when special tokens are asked for (transformers' <c>add_special_tokens=True</c>, which
    /// TRL uses for text prompts): Llama 3's <c>&lt;|begin_of_text|&gt;</c>, Mistral's <c>&lt;s&gt;</c>; none for GPT-2, Qwen and our byte tokenizer.
    /// </summary>
    IReadOnlyList<int> SpecialPrefix => [];

    /// <summary>Every id that ends a generated reply (a checkpoint's generation_config.json may name several); <see cref="EosTokenId"/> among them.</summary>
    IReadOnlyList<int> StopTokenIds => [EosTokenId];

    /// <summary>The model's own Jinja chat template, or null (conversations then use <see cref="Data.ChatTemplate"/>'s transcript).</summary>
    string? ChatTemplate => null;

    /// <summary>The special tokens' strings by tokenizer_config.json's names (<c>bos_token</c>, <c>eos_token</c>, …), as chat templates read them; empty when none are known.</summary>
    IReadOnlyDictionary<string, string?> SpecialTokens => new Dictionary<string, string?>();

    /// <summary>The ids of <paramref name="text"/> (no special tokens added, no EOS).</summary>
    int[] Encode(string text);

    /// <summary>The text of <paramref name="ids"/>; EOS decodes to nothing.</summary>
    string Decode(IReadOnlyList<int> ids);

    /// <summary>The text of <paramref name="ids"/> with special tokens written out (for reading what the model sees, as <c>kto data preview</c> shows it).</summary>
    string DecodeWithSpecialTokens(IReadOnlyList<int> ids) => Decode(ids);
}
