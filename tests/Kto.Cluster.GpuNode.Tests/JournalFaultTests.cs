using Kto.Cluster.Core;
using Kto.Domain.Cluster;
using MessagePack;
using Microsoft.Data.Sqlite;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// Journals that cannot drive a run, with real processes and real SQLite files: a second coordinator writing the same
/// journal, a file cut to half its size, an event whose payload was changed, and damage in a page the run never reads.
/// </summary>
public sealed class JournalFaultTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    [Fact]
    public async Task OfTwoCoordinatorsWritingOneJournalOneStopsNamingTheOtherAndTheOtherCompletesTheRun()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 400, learningRate: 1e-4);
        var first = cluster.StartCoordinator();
        await first.WaitFor("coordinator ready", cluster.Guard);
        var t1 = cluster.StartTrainer("t1");
        await first.WaitFor("step 10/", cluster.Guard);
        // Paused, so that the second writes first and the first is the one that meets it (which one loses is a race otherwise).
        Assert.Contains("paused", KtoTool.Run(cluster.Port, "run", "pause"));

        // A second cluster of its own (its own seed) on the same run directory, hence the same SQLite journal.
        int port = LocalCluster.FreePort();
        string seeds = $"[\"akka.tcp://kto@127.0.0.1:{port}\"]";
        string hostConfig = Path.Combine(cluster.Dir, "coordinator-b.json"), nodeConfig = Path.Combine(cluster.Dir, "node-b.json");
        File.WriteAllText(hostConfig, $$"""{"hostname": "127.0.0.1", "port": {{port}}, "seed_nodes": {{seeds}}, "roles": ["coordinator"], "run_dir": "run"}""");
        File.WriteAllText(nodeConfig, $$"""{"hostname": "127.0.0.1", "port": 0, "seed_nodes": {{seeds}}, "roles": ["trainer"]}""");
        var second = cluster.Start("coordinator-b", "Kto.Cluster.Coordinator.dll", "--config", hostConfig, "--run-id", cluster.RunId, "--run-config", cluster.RunConfig, "--exit-when-done");
        await second.WaitFor("coordinator ready", cluster.Guard);
        cluster.Start("t2", "Kto.Cluster.GpuNode.dll", "node", "--config", nodeConfig, "--trainer-id", "t2", "--data-endpoint", "127.0.0.1:0");
        await second.WaitFor("trainer t2 registered", cluster.Guard);

        // The first writes again (resume): the sequence number is the second's; it stops with status 1 naming it.
        KtoTool.Run(cluster.Port, "run", "resume");
        Assert.Equal(Coordinator.HostExitCodes.RunError, await first.WaitForExit(cluster.Guard));
        string error = await first.WaitFor(l => l.StartsWith("error: ", StringComparison.Ordinal), cluster.Guard, "an error line");
        Output.WriteLine(error);
        Assert.Contains($"run {cluster.RunId}: another coordinator writes its journal", error);
        Assert.Contains($"akka.tcp://kto@127.0.0.1:{port}", error);
        // Its trainer does not wait for a coordinator that will not come back.
        Assert.Equal(2, await t1.WaitForExit(cluster.Guard));
        await t1.WaitFor($"the coordinator of run {cluster.RunId} stopped: run {cluster.RunId}: another coordinator writes its journal", cluster.Guard);

        // The other drives the run to its end from the journal both wrote.
        Assert.Contains("resumed", KtoTool.Run(port, "run", "resume"));
        await second.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await second.WaitForExit(cluster.Guard));
        await AssertSameWeightsAndCleanJournal(cluster, tolerance: 1e-4);
    }

    [Fact]
    public async Task AJournalCutToHalfStopsTheCoordinatorHostAtOnceNamingTheFile()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 60);
        string journal = await FinishedRunJournal(cluster);
        using (var f = new FileStream(journal, FileMode.Open)) f.SetLength(f.Length / 2);

        var again = cluster.StartCoordinator();
        Assert.Equal(Coordinator.HostExitCodes.RunError, await again.WaitForExit(cluster.Guard));
        string error = await again.WaitFor(l => l.StartsWith("error: ", StringComparison.Ordinal), cluster.Guard, "an error line");
        Output.WriteLine(error);
        Assert.Contains(journal, error);
        Assert.Contains("Restore the journal from a backup", error);
        Assert.Contains("resume_from_checkpoint", error);
    }

    [Fact]
    public async Task AnEventWhosePayloadWasChangedStopsTheCoordinatorHostNamingItsSequenceNumber()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 60);
        string journal = await FinishedRunJournal(cluster);
        // Step 20's commit claims to be step 25: a valid message that does not follow from the events before it.
        long seq = RewriteEvent(journal, e => e is StepCommitted { Step: 20 } c ? c with { Step = 25 } : null);

        var again = cluster.StartCoordinator();
        Assert.Equal(Coordinator.HostExitCodes.RunError, await again.WaitForExit(cluster.Guard));
        string error = await again.WaitFor(l => l.StartsWith("error: ", StringComparison.Ordinal), cluster.Guard, "an error line");
        Output.WriteLine(error);
        Assert.Contains(journal, error);
        Assert.Contains($"event {seq} (StepCommitted) does not follow from the events before it", error);
    }

    [Fact]
    public async Task DamageInAPageTheRunNeverReadsIsReportedAtStartAndTheRunGoesOn()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 30);
        string journal = await FinishedRunJournal(cluster);
        // A table of its own (pages the run never reads), then garbage over one of its pages.
        using (var c = new SqliteConnection($"Data Source={journal};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE unrelated(x BLOB); INSERT INTO unrelated VALUES (zeroblob(20000)); PRAGMA page_size;";
            long pageSize = (long)cmd.ExecuteScalar()!;
            cmd.CommandText = "SELECT rootpage FROM sqlite_master WHERE name = 'unrelated'";
            long root = (long)cmd.ExecuteScalar()!;
            c.Close();
            using var f = new FileStream(journal, FileMode.Open);
            f.Position = (root - 1) * pageSize;
            f.Write(new Random(5).GetItems<byte>(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), (int)pageSize));
        }

        var again = cluster.StartCoordinator();
        await again.WaitFor("fails SQLite's integrity check", cluster.Guard);
        // Nothing the run needs is damaged: the host recovers the finished run and ends normally.
        Assert.Equal(0, await again.WaitForExit(cluster.Guard));
        await again.WaitFor("coordinator ready", cluster.Guard);
    }

    [Fact]
    public async Task ARunWhoseJournalWasLostGoesOnFromItsLatestCheckpointAndReachesTheWeightsOfOneProcess()
    {
        // Enough steps that the run is still going when the kill lands after the checkpoint of step 24 (its steps take milliseconds).
        await using var cluster = new LocalCluster(Output, maxSteps: 160);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var trainers = new[] { cluster.StartTrainer("t1"), cluster.StartTrainer("t2") };
        await coordinator.WaitFor("checkpoint after step 24 recorded", cluster.Guard);
        coordinator.Kill();
        foreach (var t in trainers) t.Kill();
        foreach (string f in Directory.GetFiles(Path.Combine(cluster.Dir, "run"), PersistenceConfig.DefaultSqliteFile + "*")) File.Delete(f);

        // The advice of a coordinator that cannot recover its journal: the same config, resume_from_checkpoint "latest".
        string resumed = Path.Combine(cluster.Dir, "run-resumed.json");
        File.WriteAllText(resumed, File.ReadAllText(cluster.RunConfig).TrimEnd().TrimEnd('}') + ", \"resume_from_checkpoint\": \"latest\"}");
        var again = cluster.Start("coordinator-2", "Kto.Cluster.Coordinator.dll", "--config", cluster.CoordinatorConfig, "--run-id", cluster.RunId, "--run-config", resumed,
            "--exit-when-done", "--min-trainers", "2");
        string from = await again.WaitFor("continues from checkpoint", cluster.Guard);
        Assert.Contains("checkpoint-", from);
        cluster.StartTrainer("t1");
        cluster.StartTrainer("t2");
        await again.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await again.WaitForExit(cluster.Guard));
        int committedFrom = int.Parse(from.Split(": ")[^1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(committedFrom >= 24, from);
        Assert.True(committedFrom < 160, from);
        Assert.Equal(160 - committedFrom, again.Commits.Count); // only the steps after the checkpoint are trained again
        await AssertSameWeightsAndCleanJournal(cluster);
        AssertCompleteMetrics(cluster); // the earlier lines kept, the new run's lines after them
    }

    /// <summary>Runs the cluster's run to its end with one trainer; returns the journal file.</summary>
    private static async Task<string> FinishedRunJournal(LocalCluster cluster)
    {
        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        var trainer = cluster.StartTrainer("t1");
        await coordinator.WaitFor("complete:", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        trainer.Kill();
        return Path.Combine(cluster.Dir, "run", PersistenceConfig.DefaultSqliteFile);
    }

    /// <summary>Replaces the payload of the first event <paramref name="change"/> maps to a new one; returns its sequence number.</summary>
    private static long RewriteEvent(string journal, Func<IRunEvent, IRunEvent?> change)
    {
        var options = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);
        using var c = new SqliteConnection($"Data Source={journal};Pooling=False");
        c.Open();
        using var read = c.CreateCommand();
        read.CommandText = "SELECT sequence_number, message FROM journal ORDER BY sequence_number";
        (long Seq, byte[] Payload)? found = null;
        using (var r = read.ExecuteReader())
            while (found is null && r.Read())
                if (change(MessagePackSerializer.Deserialize<IRunEvent>((byte[])r[1], options)) is { } changed)
                    found = (r.GetInt64(0), MessagePackSerializer.Serialize(changed, options));
        Assert.NotNull(found);
        using var write = c.CreateCommand();
        write.CommandText = "UPDATE journal SET message = $m WHERE sequence_number = $s";
        write.Parameters.AddWithValue("$m", found.Value.Payload);
        write.Parameters.AddWithValue("$s", found.Value.Seq);
        Assert.Equal(1, write.ExecuteNonQuery());
        return found.Value.Seq;
    }
}
