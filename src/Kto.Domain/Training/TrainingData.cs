using System.Security.Cryptography;
using Kto.Domain.Data;
using Kto.Domain.Loss;

namespace Kto.Domain.Training;

/// <summary>
/// A loaded dataset turned into <see cref="TrainItem"/>s: each example gets its KL pair (see
/// <see cref="KlPairing"/>), and the whole gets a fingerprint that keys cached reference log-probs.
/// </summary>
public sealed class TrainingData
{
    private TrainingData(TrainItem[] items, string fingerprint)
    {
        Items = items;
        Fingerprint = fingerprint;
    }

    /// <summary>Items in dataset order.</summary>
    public IReadOnlyList<TrainItem> Items { get; }

    /// <summary>SHA-256 (hex) over every item's token ids, labels and KL pairs.</summary>
    public string Fingerprint { get; }

    /// <summary>Pairs and fingerprints <paramref name="examples"/>; <paramref name="klChunkSize"/> is the per-step batch size.</summary>
    public static TrainingData Build(IReadOnlyList<KtoExample> examples, int klChunkSize, DatasetLoadOptions lengths)
    {
        var items = new TrainItem[examples.Count];
        if (examples.Count == 1)
        {
            // A lone example has no other completion to pair with; losses with a KL term reject this earlier.
            items[0] = new TrainItem(0, examples[0], examples[0].PromptIds, []);
        }
        else
        {
            int[] partner = KlPairing.Partners(examples.Count, Math.Max(2, klChunkSize),
                (i, j) => examples[i].PromptIds.AsSpan().SequenceEqual(examples[j].PromptIds));
            for (int i = 0; i < examples.Count; i++)
            {
                var pair = Truncation.Apply(examples[i].PromptIds, examples[partner[i]].CompletionIds, lengths)
                    ?? throw new InvalidOperationException($"example {i}: its KL pair leaves no room for a completion");
                items[i] = new TrainItem(i, examples[i], pair.Prompt, pair.Completion);
            }
        }
        return new TrainingData(items, ComputeFingerprint(items));
    }

    private static string ComputeFingerprint(TrainItem[] items)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buf = new byte[4];
        void Int(int v) { System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(buf, v); hash.AppendData(buf); }
        void Ids(int[] ids) { Int(ids.Length); foreach (int id in ids) Int(id); }
        Int(items.Length);
        foreach (TrainItem it in items)
        {
            Ids(it.Example.PromptIds);
            Ids(it.Example.CompletionIds);
            Int(it.Example.Label ? 1 : 0);
            Ids(it.KlPromptIds);
            Ids(it.KlCompletionIds);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
