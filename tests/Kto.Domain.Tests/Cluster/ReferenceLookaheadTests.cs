using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Tests.Training;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Cluster;

/// <summary>
/// The reference scored a step ahead (<see cref="ReplicaTrainer.ScoreNextStepAhead"/>, between a reduction and its
/// apply) changes no bit of what the replicas compute, in the ordinary step and under full_determinism, and a shard
/// scored for a membership the next step does not have is not used.
/// </summary>
public sealed class ReferenceLookaheadTests : IDisposable
{
    private readonly TrainingFixture _f = new(examples: 24, desirableShare: 0.4, seed: 13); // 4 micro-batches of 6: every step has 2

    public void Dispose() => _f.Dispose();

    private KtoConfig Config(string name, bool fullDeterminism) => _f.Config(name, c => c with
    {
        MaxSteps = 5, PerDeviceTrainBatchSize = 6, GradientAccumulationSteps = 2, LearningRate = 3e-3, SaveSteps = 1000,
        FullDeterminism = fullDeterminism, DeterminismSlices = 3,
    });

    /// <summary>Two replicas on threads through every step; each member's checksums and final state, and its look-ahead's hits and misses.</summary>
    private static (List<ulong> Checksums, byte[] State, long Hits, long Misses, Dictionary<string, float[]> Weights)[] Run(KtoConfig c, bool lookahead, int members = 2, int[]? shares = null)
    {
        var group = new InMemoryGroup(members);
        var results = new (List<ulong>, byte[], long, long, Dictionary<string, float[]>)[members];
        var threads = Enumerable.Range(0, members).Select(rank => new Thread(() =>
        {
            using TrainingSetup setup = TrainingSetup.Prepare(c, NullObserver.Instance);
            using var replica = new ReplicaTrainer(setup);
            Assert.NotNull(replica.Lookahead); // the fixture's reference is a live model
            var checksums = new List<ulong>();
            for (int step = 0; step < replica.TotalSteps; step++)
            {
                checksums.Add(replica.Reduce(step, 0, group.Member(rank), shares).Checksum);
                if (lookahead) replica.ScoreNextStepAhead();
                replica.Apply(step, 0);
            }
            results[rank] = (checksums, replica.ExportState(), replica.Lookahead!.Hits, replica.Lookahead.Misses,
                setup.Policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().data<float>().ToArray()));
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return results;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ScoringTheNextStepAheadChangesNoBit(bool fullDeterminism)
    {
        KtoConfig c = Config(fullDeterminism ? "exact" : "ordinary", fullDeterminism);
        var plain = Run(c, lookahead: false);
        var ahead = Run(c, lookahead: true);
        int steps = plain[0].Checksums.Count;
        Assert.True(steps >= 3, $"{steps} steps");
        for (int rank = 0; rank < 2; rank++)
        {
            Assert.Equal(plain[rank].Checksums, ahead[rank].Checksums);
            Assert.Equal(plain[rank].State, ahead[rank].State);
            Assert.Equal(0, plain[rank].Hits);
            // Every shard after the first step was scored ahead: one per micro-batch, or under full_determinism each
            // of the member's slices (3 slices of 6 between 2 members: rank 0 computes 2, rank 1 one).
            int shardsPerStep = 2 * (fullDeterminism ? (rank == 0 ? 2 : 1) : 1);
            Assert.Equal(shardsPerStep * (steps - 1), ahead[rank].Hits);
            if (fullDeterminism) Assert.True(ahead[rank].Misses >= shardsPerStep); // a step the exact sums' grid retries scores again
            else Assert.Equal(shardsPerStep, ahead[rank].Misses);
        }
    }

    [Fact]
    public void UnevenSharesGiveTheSameTrainingUnderFullDeterminismTheSameBits()
    {
        // The ordinary step: members agree bit for bit, and the weights are the equal split's up to float sums' order.
        KtoConfig ordinary = Config("uneven", fullDeterminism: false);
        var equal = Run(ordinary, lookahead: true);
        var uneven = Run(ordinary, lookahead: true, shares: [2, 1]); // 4 and 2 of each micro-batch of 6
        Assert.Equal(uneven[0].State, uneven[1].State);
        Assert.True(Kto.Domain.Checkpoints.WeightDistance.RelativeL2(equal[0].Weights, uneven[0].Weights) < 1e-5);
        Assert.NotEqual(equal[0].Checksums, uneven[0].Checksums); // the split did change (float sums in another order)

        // full_determinism: 3 slices as 2 + 1 (equal) or 1 + 2: the same bits.
        KtoConfig exact = Config("uneven-exact", fullDeterminism: true);
        var exactEqual = Run(exact, lookahead: true);
        var exactUneven = Run(exact, lookahead: true, shares: [1, 2]);
        Assert.Equal(exactEqual[0].State, exactUneven[0].State);
        Assert.Equal(exactUneven[0].State, exactUneven[1].State);
        Assert.Equal(exactEqual[0].Checksums, exactUneven[0].Checksums);
    }

    [Fact]
    public void ShardsScoredForAMembershipTheNextStepDoesNotHaveAreNotUsed()
    {
        KtoConfig c = Config("membership", fullDeterminism: false);
        using TrainingSetup aheadSetup = TrainingSetup.Prepare(c, NullObserver.Instance);
        using var ahead = new ReplicaTrainer(aheadSetup);
        using TrainingSetup plainSetup = TrainingSetup.Prepare(c, NullObserver.Instance);
        using var plain = new ReplicaTrainer(plainSetup);

        // Step 0 with two members; one scores step 1 ahead for that membership (half of each micro-batch)…
        var group = new InMemoryGroup(2);
        var other = new Thread(() => plain.Reduce(0, group.Member(1)));
        other.Start();
        ahead.Reduce(0, group.Member(0));
        other.Join();
        Assert.Equal(2, ahead.ScoreNextStepAhead());
        ahead.Apply(0);
        plain.Apply(0);
        Assert.Equal(ahead.ExportState(), plain.ExportState());

        // …but step 1 runs with one member (the other left): its shards are whole micro-batches, scored afresh.
        long misses = ahead.Lookahead!.Misses;
        ulong checksum = ahead.Reduce(1, SoloGroup.Instance).Checksum;
        Assert.Equal(plain.Reduce(1, SoloGroup.Instance).Checksum, checksum);
        Assert.Equal(0, ahead.Lookahead.Hits);
        Assert.Equal(misses + 2, ahead.Lookahead.Misses);

        // Scored ahead for the group of one it now is, step 2 uses them.
        Assert.Equal(2, ahead.ScoreNextStepAhead());
        ahead.Apply(1);
        plain.Apply(1);
        Assert.Equal(plain.Reduce(2, SoloGroup.Instance).Checksum, ahead.Reduce(2, SoloGroup.Instance).Checksum);
        Assert.Equal(2, ahead.Lookahead.Hits);
    }
}

/// <summary>
/// A LoRA run's reference sets the policy's modules_to_save to their original weights while it scores; a state
/// export for a joiner, which a trainer serves while a step runs, still gets the trained weights.
/// </summary>
public sealed class ExportBesideAStepTests : IDisposable
{
    private readonly TrainingFixture _f = new(arch: "qwen3"); // an untied output head

    public void Dispose() => _f.Dispose();

    [Fact]
    public void AStateExportWhileTheReferenceScoresHoldsTheTrainedModulesToSave()
    {
        KtoConfig c = _f.Config("export", c => c with
        {
            UsePeft = true, LoraR = 4, LoraAlpha = 8, LoraDropout = 0, LoraModulesToSave = ["lm_head"], LearningRate = 1e-2, MaxSteps = 40,
        });
        using TrainingSetup setup = TrainingSetup.Prepare(c, NullObserver.Instance);
        using var replica = new ReplicaTrainer(setup);
        for (int step = 0; step < 2; step++)
        {
            replica.Reduce(step, SoloGroup.Instance);
            replica.Apply(step);
        }
        byte[] held = replica.ExportState(); // lm_head trained for 2 steps: not the reference's
        int exports = 0, differing = 0;
        using var done = new ManualResetEventSlim();
        var exporter = new Thread(() =>
        {
            while (!done.IsSet)
            {
                if (!replica.ExportState().AsSpan().SequenceEqual(held)) differing++;
                exports++;
            }
        });
        exporter.Start();
        for (int i = 0; i < 30 || exports < 10; i++) replica.Reduce(2, SoloGroup.Instance); // each scores the reference; the weights stay
        done.Set();
        exporter.Join();
        Assert.Equal(0, differing);
        Assert.True(exports >= 10, $"{exports} exports");
    }
}
