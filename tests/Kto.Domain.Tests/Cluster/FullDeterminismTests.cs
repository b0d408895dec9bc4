using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Tests.Training;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Cluster;

/// <summary>
/// full_determinism: replicas of 1, 2 and 3 members, with the membership changing between steps, end with the bits of
/// <c>kto train</c> on the same config — weights, optimizer state and every step's metrics — because each micro-batch
/// is cut into fixed slices and their sums are exact. In-process (threads, in-memory all-reduce summing in rank order).
/// </summary>
public sealed class FullDeterminismTests : IDisposable
{
    private readonly TrainingFixture _f = new(examples: 30, desirableShare: 0.4, seed: 13);

    public void Dispose() => _f.Dispose();

    private KtoConfig Config(string name, Func<KtoConfig, KtoConfig>? edit = null) => _f.Config(name, c =>
    {
        c = c with
        {
            FullDeterminism = true, DeterminismSlices = 4, MaxSteps = 12, PerDeviceTrainBatchSize = 6, GradientAccumulationSteps = 2,
            LearningRate = 3e-3, WarmupSteps = 2, LrSchedulerType = "cosine", SaveSteps = 1000,
        };
        return edit is null ? c : edit(c);
    });

    /// <summary>Runs the plan's steps on replicas whose group size at step s is <paramref name="membersAt"/>(s); every
    /// step starts from the state the previous step's first member exported, so a changing membership is a join.</summary>
    private static (Dictionary<string, float[]> Weights, List<double[]> Metrics, byte[] State) RunReplicas(KtoConfig c, Func<int, int> membersAt)
    {
        byte[]? state = null;
        var metrics = new List<double[]>();
        int total;
        using (TrainingSetup probe = TrainingSetup.Prepare(c, NullObserver.Instance))
        using (var replica = new ReplicaTrainer(probe))
            total = replica.TotalSteps;
        for (int step = 0; step < total; step++)
        {
            int n = membersAt(step);
            var group = new InMemoryGroup(n);
            var results = new (double[] Metrics, byte[] State)[n];
            var threads = Enumerable.Range(0, n).Select(rank => new Thread(() =>
            {
                using TrainingSetup setup = TrainingSetup.Prepare(c, NullObserver.Instance);
                using var replica = new ReplicaTrainer(setup);
                if (state is not null) replica.ImportState(state);
                ReducedStep r = replica.Reduce(step, group.Member(rank));
                replica.Apply(step);
                results[rank] = (MetricVector.From(r.Metrics), replica.ExportState());
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            for (int r = 1; r < n; r++) Assert.Equal(results[0].State, results[r].State); // members agree bit for bit
            metrics.Add(results[0].Metrics);
            state = results[0].State;
        }
        using TrainingSetup last = TrainingSetup.Prepare(c, NullObserver.Instance);
        using var final = new ReplicaTrainer(last);
        final.ImportState(state!);
        return (last.Policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().data<float>().ToArray()), metrics, state!);
    }

    private static void AssertSameWeights(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in expected) Assert.True(values.AsSpan().SequenceEqual(actual[name]), $"{name} differs");
    }

    [Fact]
    public void OneTwoAndThreeMembersAndAChangingMembershipGiveTheBitsOfKtoTrain()
    {
        KtoConfig single = Config("single");
        TrainResult trained = TrainingFixture.Train(single);
        Dictionary<string, float[]> expected = TrainingFixture.Weights(trained.FinalCheckpoint);
        var logged = TrainingFixture.Metrics(single);

        foreach (var (name, membersAt) in new (string, Func<int, int>)[]
        {
            ("one", _ => 1), ("two", _ => 2), ("three", _ => 3), ("churn", s => s % 3 + 1), // 1, 2, 3, 1, 2, 3, …: joins and leaves every step
        })
        {
            var (weights, metrics, _) = RunReplicas(Config(name), membersAt);
            AssertSameWeights(expected, weights);
            Assert.Equal(logged.Count, metrics.Count);
            for (int s = 0; s < metrics.Count; s++)
            {
                var figures = MetricVector.To(metrics[s]).ToDictionary();
                foreach (var (key, value) in figures) Assert.True(logged[s][key] == value, $"{name}: step {s + 1} {key}: {value:R} vs kto train's {logged[s][key]:R}");
            }
        }
    }

    [Fact]
    public void TheOptimizerStateAndTheExactSumsGridAreKtoTrainsToo()
    {
        KtoConfig single = Config("single");
        TrainResult trained = TrainingFixture.Train(single);
        var (_, _, state) = RunReplicas(Config("two"), _ => 2);
        var contents = Safetensors.Read(state, "state");
        var optimizer = Safetensors.Read(Path.Combine(trained.FinalCheckpoint, TrainingCheckpoint.OptimizerFile));
        Assert.Equal(optimizer.Metadata["exact_sum_floors"], contents.Metadata["exact_sum_floors"]);
        Assert.Equal(optimizer.Metadata["step_count"], contents.Metadata["step_count"]);
        foreach (var (name, t) in optimizer.Tensors)
            Assert.True(t.data<float>().ToArray().AsSpan().SequenceEqual(contents.Tensors["optimizer." + name].data<float>().ToArray()), $"optimizer {name} differs");
    }

    [Fact]
    public void AResumedDeterministicRunIsBitExactAndWithoutTheModeTheClusterOnlyApproximatesKtoTrain()
    {
        var straight = TrainingFixture.Train(Config("straight"));
        using var cancel = new CancellationTokenSource();
        TrainingFixture.Train(Config("resumed"), cancel.Token, new StopAtStep(5, cancel));
        var second = TrainingFixture.Train(Config("resumed") with { ResumeFromCheckpoint = KtoConfigReader.ResumeLatest });
        AssertSameWeights(TrainingFixture.Weights(straight.FinalCheckpoint), TrainingFixture.Weights(second.FinalCheckpoint));

        // The control: the ordinary step's float sums depend on the membership.
        KtoConfig Plain(string n) => Config(n, c => c with { FullDeterminism = false });
        var plain = TrainingFixture.Weights(TrainingFixture.Train(Plain("plain")).FinalCheckpoint);
        var (three, _, _) = RunReplicas(Plain("plain3"), _ => 3);
        Assert.Contains(plain, kv => !kv.Value.AsSpan().SequenceEqual(three[kv.Key]));
        // …and the exact step trains as the ordinary one does: slices and rounding onto the grid move the weights only at float rounding's scale.
        double rel = WeightDistance.RelativeL2(plain, TrainingFixture.Weights(straight.FinalCheckpoint));
        Assert.True(rel < 1e-5, $"full_determinism's weights are {rel:E2} from the ordinary run's");
    }

    [Fact]
    public void ExactSumsAreOrderIndependentAndRetryWhenTheGridOverflows()
    {
        using var p = new TorchSharp.Modules.Parameter(TorchSharp.torch.zeros(3));
        using var exact = new ExactSum([p], slicesPerStep: 4);
        float[][] slices = [[1e-3f, -2.5f, 3e-7f], [4e-3f, 1.25f, -1e-7f], [-7e-3f, 0.5f, 5e-7f]];
        double[] Sum(IEnumerable<float[]> order)
        {
            double[] flat;
            do
            {
                exact.Reset();
                foreach (float[] s in order)
                {
                    p.grad = TorchSharp.torch.tensor(s);
                    exact.AddSlice();
                }
            }
            while (exact.MustRetry(exact.OverflowVector(0, 1), 1)); // the first attempt sets the grid
            flat = new double[exact.Length];
            exact.CopyUnitsTo(flat);
            return flat;
        }
        double[] a = Sum(slices), b = Sum(slices.Reverse());
        Assert.Equal(a, b);
        exact.WriteGradients(a);
        float[] g = p.grad!.data<float>().ToArray();
        Assert.Equal((float)(-2.5 + 1.25 + 0.5), g[1]);
        Assert.Equal((float)(1e-3 + 4e-3 - 7e-3), g[0], 1e-9f);

        // A gradient 2^10 larger than the grid was set for: the attempt must run again, on a new grid.
        exact.Reset();
        p.grad = TorchSharp.torch.tensor(new[] { 0f, 2000f, 0f });
        exact.AddSlice();
        Assert.True(exact.MustRetry(exact.OverflowVector(0, 1), 1));
    }
}
