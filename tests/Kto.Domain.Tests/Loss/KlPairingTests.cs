using Kto.Domain.Loss;

namespace Kto.Domain.Tests.Loss;

/// <summary>KL partner choice: a +1 rotation inside each chunk, never a self pair, skipping same-prompt neighbours.</summary>
public class KlPairingTests
{
    private static Func<int, int, bool> SamePrompt(params string[] prompts) => (i, j) => prompts[i] == prompts[j];

    [Fact]
    public void TwoExamplesSwap()
    {
        Assert.Equal([1, 0], KlPairing.Partners(2, 2));
        Assert.Equal([1, 0], KlPairing.Partners(2, 8));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    public void OddSizesRotateAndTheMiddleExampleIsNotItsOwnPartner(int n)
    {
        int[] partners = KlPairing.Partners(n, n);
        for (int i = 0; i < n; i++)
        {
            Assert.NotEqual(i, partners[i]);
            Assert.Equal((i + 1) % n, partners[i]);
        }
        Assert.NotEqual(n / 2, partners[n / 2]);
    }

    [Fact]
    public void ALoneLastExampleTakesItsPredecessorsCompletion()
    {
        // count = 2·4 + 1: chunks [0..3], [4..7], [8].
        Assert.Equal([1, 2, 3, 0, 5, 6, 7, 4, 7], KlPairing.Partners(9, 4));
        // count = 2·3 + 1 with odd chunks.
        Assert.Equal([1, 2, 0, 4, 5, 3, 5], KlPairing.Partners(7, 3));
        // The smallest case: chunk 2, count 3.
        Assert.Equal([1, 0, 1], KlPairing.Partners(3, 2));
    }

    [Fact]
    public void ALoneLastExampleBorrowsItsPredecessorEvenWhenPromptsMatch()
    {
        // Documented behaviour: the lone example takes i − 1 regardless of prompts (never itself).
        int[] partners = KlPairing.Partners(3, 2, SamePrompt("a", "b", "b"));
        Assert.Equal(1, partners[2]);
    }

    [Fact]
    public void AShortLastChunkRotatesWithinItself()
    {
        Assert.Equal([1, 2, 3, 0, 5, 4], KlPairing.Partners(6, 4));
        Assert.Equal([1, 2, 3, 0, 5, 6, 4], KlPairing.Partners(7, 4));
    }

    [Fact]
    public void AChunkLargerThanTheCountIsOneRotation()
    {
        Assert.Equal([1, 2, 3, 4, 0], KlPairing.Partners(5, 64));
        Assert.Equal([1, 2, 0], KlPairing.Partners(3, int.MaxValue));
    }

    [Fact]
    public void AdjacentSamePromptRowsGetAPartnerWithAnotherPrompt()
    {
        // Paired data unpaired into (chosen, rejected) rows: each neighbour shares the prompt.
        string[] prompts = ["a", "a", "b", "b", "c", "c"];
        int[] partners = KlPairing.Partners(6, 6, SamePrompt(prompts));
        Assert.Equal([2, 2, 4, 4, 0, 0], partners);
        for (int i = 0; i < 6; i++) Assert.NotEqual(prompts[i], prompts[partners[i]]);
    }

    [Fact]
    public void SamePromptSkippingTakesTheFirstLaterDifferentPromptCyclically()
    {
        string[] prompts = ["a", "a", "a", "b"];
        Assert.Equal([3, 3, 3, 0], KlPairing.Partners(4, 4, SamePrompt(prompts)));
        // Distinct prompts: plain rotation.
        Assert.Equal([1, 2, 3, 0], KlPairing.Partners(4, 4, SamePrompt("a", "b", "c", "d")));
    }

    [Fact]
    public void AllSamePromptFallsBackToPlainRotation()
    {
        Assert.Equal([1, 2, 3, 0], KlPairing.Partners(4, 4, SamePrompt("a", "a", "a", "a")));
        Assert.Equal([1, 0], KlPairing.Partners(2, 2, SamePrompt("a", "a")));
    }

    [Fact]
    public void SamePromptSkippingStaysInsideTheChunk()
    {
        // Chunk [0..2] all "a", chunk [3..5] mixed: chunk 0 rotates plainly though "b" exists in chunk 1.
        string[] prompts = ["a", "a", "a", "b", "b", "a"];
        Assert.Equal([1, 2, 0, 5, 5, 3], KlPairing.Partners(6, 3, SamePrompt(prompts)));
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(0, 2)]
    [InlineData(-3, 2)]
    public void FewerThanTwoExamplesThrow(int count, int chunkSize)
    {
        var e = Assert.Throws<ArgumentException>(() => KlPairing.Partners(count, chunkSize));
        Assert.Equal("count", e.ParamName);
    }

    [Theory]
    [InlineData(4, 1)]
    [InlineData(4, 0)]
    [InlineData(4, -1)]
    public void AChunkOfFewerThanTwoThrows(int count, int chunkSize)
    {
        var e = Assert.Throws<ArgumentException>(() => KlPairing.Partners(count, chunkSize));
        Assert.Equal("chunkSize", e.ParamName);
    }

    [Fact]
    public void PropertyNoSelfPairsAndEachChunkIsARotationPermutation()
    {
        for (int count = 2; count <= 70; count++)
        {
            for (int chunk = 2; chunk <= 75; chunk++)
            {
                int[] partners = KlPairing.Partners(count, chunk);
                Assert.Equal(count, partners.Length);
                for (int start = 0; start < count; start += chunk)
                {
                    int size = Math.Min(chunk, count - start);
                    if (size == 1)
                    {
                        Assert.Equal(start - 1, partners[start]);
                        continue;
                    }
                    var seen = new bool[size];
                    for (int i = start; i < start + size; i++)
                    {
                        Assert.NotEqual(i, partners[i]);
                        Assert.InRange(partners[i], start, start + size - 1);
                        Assert.Equal(start + (i - start + 1) % size, partners[i]);
                        Assert.False(seen[partners[i] - start], $"count {count}, chunk {chunk}: {partners[i]} used twice");
                        seen[partners[i] - start] = true;
                    }
                }
            }
        }
    }

    [Fact]
    public void PropertyWithRandomPromptsNoSelfPairsAndDifferentPromptsWhenPossible()
    {
        var rng = new Random(77);
        for (int trial = 0; trial < 2000; trial++)
        {
            int count = rng.Next(2, 50);
            int chunk = rng.Next(2, 20);
            int distinct = rng.Next(1, 5);
            int[] prompt = Enumerable.Range(0, count).Select(_ => rng.Next(distinct)).ToArray();
            // Often make neighbours share a prompt, as unpaired preference data does.
            for (int i = 1; i < count; i++) if (rng.Next(3) == 0) prompt[i] = prompt[i - 1];
            int[] partners = KlPairing.Partners(count, chunk, (i, j) => prompt[i] == prompt[j]);
            for (int start = 0; start < count; start += chunk)
            {
                int size = Math.Min(chunk, count - start);
                if (size == 1)
                {
                    Assert.Equal(start - 1, partners[start]);
                    continue;
                }
                for (int i = start; i < start + size; i++)
                {
                    Assert.NotEqual(i, partners[i]);
                    Assert.InRange(partners[i], start, start + size - 1);
                    bool otherPromptInChunk = Enumerable.Range(start, size).Any(j => prompt[j] != prompt[i]);
                    if (otherPromptInChunk) Assert.NotEqual(prompt[i], prompt[partners[i]]);
                    else Assert.Equal(start + (i - start + 1) % size, partners[i]);
                }
            }
        }
    }
}
