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

    /// <summary>The ids of <paramref name="text"/> (no EOS added).</summary>
    int[] Encode(string text);

    /// <summary>The text of <paramref name="ids"/>; EOS decodes to nothing.</summary>
    string Decode(IReadOnlyList<int> ids);
}
