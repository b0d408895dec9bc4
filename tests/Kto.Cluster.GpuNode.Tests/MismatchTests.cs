using Kto.Domain.Checkpoints;
using Kto.Domain.Model;
using TorchSharp;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// Nodes whose models do not match the run's, with real processes: the box's copy of the policy, its shape, its
/// tokenizer or its reference differs. Each is refused at registration with a one-line reason on both sides and exits
/// 2; the run goes on with the others and ends with the weights of one process.
/// </summary>
public sealed class MismatchTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    private static void SaveModel(string dir, int width, ulong seed)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        using var g = new torch.Generator(seed);
        using var m = new GptLmHeadModel(new GptConfig(257, 24, width, 1, 2, Tokenizer: "byte"), g);
        ModelCheckpoint.Save(m, dir);
    }

    private static void CopyDir(string from, string to)
    {
        if (Directory.Exists(to)) Directory.Delete(to, recursive: true);
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    /// <summary>Starts a trainer that must refuse the run: exit 2, a reason naming <paramref name="what"/>, and the coordinator's line.</summary>
    private async Task Refused(LocalCluster cluster, LocalCluster.Proc coordinator, string id, params string[] what)
    {
        var bad = cluster.StartTrainer(id);
        Assert.Equal(2, await bad.WaitForExit(cluster.Guard));
        string error = await bad.WaitFor(l => l.StartsWith("error: ", StringComparison.Ordinal), cluster.Guard, "an error line");
        Output.WriteLine(error);
        foreach (string w in what) Assert.Contains(w, error);
        string seen = await coordinator.WaitFor($"trainer {id} refused run", cluster.Guard);
        foreach (string w in what) Assert.Contains(w, seen);
    }

    [Fact]
    public async Task TrainersWithAnotherPolicyShapeTokenizerOrReferenceAreRefusedAtStartAndMidRunAndTheRunIsUntouched()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 120, learningRate: 1e-4);
        string model = Path.Combine(cluster.Dir, "model"), keep = Path.Combine(cluster.Dir, "model-kept"), reference = Path.Combine(cluster.Dir, "ref");
        CopyDir(model, keep);
        CopyDir(model, reference);
        File.WriteAllText(cluster.RunConfig, File.ReadAllText(cluster.RunConfig).TrimEnd().TrimEnd('}') + ", \"ref_model_name_or_path\": \"ref\"}");
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);

        // At start: this box's policy has the run's shape but other weights (another seed).
        SaveModel(model, width: 16, seed: 4);
        await Refused(cluster, coordinator, "t9", "policy model", "model.safetensors");
        CopyDir(keep, model);
        cluster.PauseAt(5); // so the run cannot end before the cases below
        cluster.StartTrainer("t1");
        await cluster.PausedAt(coordinator, 5);

        // Mid-run: another shape; another tokenizer file; another reference.
        SaveModel(model, width: 32, seed: 3);
        await Refused(cluster, coordinator, "t8", "policy model", "config.json", "model.safetensors");
        CopyDir(keep, model);
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\"}}");
        await Refused(cluster, coordinator, "t7", "tokenizer.json (", "missing in the run");
        CopyDir(keep, model);
        SaveModel(reference, width: 16, seed: 5);
        await Refused(cluster, coordinator, "t6", "reference model", "model.safetensors");
        CopyDir(keep, reference);

        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        Assert.All(coordinator.Commits, c => Assert.Equal("t1", MembersOf(c))); // no refused trainer was ever in a step
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
    }

    [Fact]
    public async Task ASecondProcessWithALiveTrainersIdIsRefusedAndNeverMergedIntoIt()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 100, learningRate: 1e-4);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.PauseAt(5);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await cluster.PausedAt(coordinator, 5);

        var second = cluster.Start("t2-again", "Kto.Cluster.GpuNode.dll", "node", "--config", cluster.NodeConfig, "--trainer-id", "t2", "--data-endpoint", "127.0.0.1:0");
        Assert.Equal(2, await second.WaitForExit(cluster.Guard));
        string error = await second.WaitFor(l => l.StartsWith("error: ", StringComparison.Ordinal), cluster.Guard, "an error line");
        Output.WriteLine(error);
        Assert.Contains("trainer id t2 is in use by a live trainer at akka.tcp://kto@127.0.0.1:", error);
        Assert.Contains("a second process registers as trainer t2", string.Join("\n", coordinator.Lines));

        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        Assert.All(coordinator.Commits, c => Assert.Equal("t1,t2", MembersOf(c))); // the holder stayed in every step
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
    }
}
