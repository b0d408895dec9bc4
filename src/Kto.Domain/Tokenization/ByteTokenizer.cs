using System.Text;

namespace Kto.Domain.Tokenization;

/// <summary>
/// Byte-level tokenizer for tiny models: each UTF-8 byte is its own id (0–255) and EOS is 256, so the
/// vocabulary has 257 ids and every string round-trips exactly.
/// </summary>
public sealed class ByteTokenizer : ITextTokenizer
{
    /// <summary>The name recorded in checkpoints.</summary>
    public const string TokenizerName = "byte";

    /// <summary>The EOS id: one past the last byte value.</summary>
    public const int Eos = 256;

    /// <summary>The shared instance.</summary>
    public static ByteTokenizer Instance { get; } = new();

    private ByteTokenizer() { }

    /// <inheritdoc />
    public string Name => TokenizerName;

    /// <inheritdoc />
    public int VocabSize => Eos + 1;

    /// <inheritdoc />
    public int EosTokenId => Eos;

    /// <inheritdoc />
    public int BosTokenId => Eos; // one special token, as GPT-2 has

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>(ids.Count);
        foreach (int id in ids)
        {
            if (id is >= 0 and < Eos) bytes.Add((byte)id);
            else if (id != Eos) throw new ArgumentOutOfRangeException(nameof(ids), id, $"byte tokenizer ids lie in [0, {Eos}]");
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
