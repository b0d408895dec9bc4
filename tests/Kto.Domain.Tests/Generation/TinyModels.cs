using Kto.Domain.Model;
using Kto.Domain.Tokenization;
using TorchSharp;

namespace Kto.Domain.Tests.Generation;

/// <summary>Tiny random byte-level models for sampler tests.</summary>
internal static class TinyModels
{
    public const int Eos = ByteTokenizer.Eos;

    public static GptLmHeadModel Create(int positions = 16, ulong seed = 11)
    {
        using var g = new torch.Generator(seed);
        return new GptLmHeadModel(new GptConfig(257, positions, 16, 1, 2, Tokenizer: "byte"), g);
    }

    public static int[] Ids(string text) => ByteTokenizer.Instance.Encode(text);
}
