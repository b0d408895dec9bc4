using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// Bytes nobody should send, into every port a running cluster listens on (real processes on loopback): random
/// streams into the coordinator's and the trainers' Akka.Remote ports and into the trainers' ring ports, and ring
/// frames whose length prefix lies. The run goes on and ends byte for byte as kto train's (full_determinism), and the
/// coordinator's log holds one full line per kind of refusal and a count of the rest, not one stack trace per connection.
/// </summary>
public sealed partial class EdgeInputTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    [GeneratedRegex(@"listens on addresses: \[akka\.tcp://kto@127\.0\.0\.1:(\d+)\]")]
    private static partial Regex AkkaPort();

    /// <summary>Opens <paramref name="connections"/> connections to <paramref name="port"/>, writes <paramref name="bytes"/> random bytes on each (as far as the peer reads them), and closes them.</summary>
    private static async Task Garbage(int port, int connections, int bytes, int seed)
    {
        var rng = new Random(seed);
        for (int c = 0; c < connections; c++)
        {
            byte[] data = new byte[bytes];
            rng.NextBytes(data);
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port);
            using var write = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await client.GetStream().WriteAsync(data, write.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                // The peer closed the connection (or stopped reading): what it should do with garbage.
            }
        }
    }

    /// <summary>A ring connection whose first frame announces 65,535 bytes (more than a hello may have) and then sends 3.</summary>
    private static async Task LyingFrame(int port)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        NetworkStream stream = client.GetStream();
        await stream.WriteAsync(new byte[] { 0xff, 0xff, 1, 2, 3 });
        var buffer = new byte[64];
        using var read = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.Equal(0, await stream.ReadAsync(buffer, read.Token)); // closed by the trainer, nothing answered
    }

    [Fact]
    public async Task RandomBytesIntoEveryListeningPortAndLyingRingFramesLeaveTheRunUnharmed()
    {
        await using var cluster = new LocalCluster(Output, maxSteps: 48, learningRate: 3e-3, fullDeterminism: true);
        var coordinator = cluster.StartCoordinator("--min-trainers", "2");
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        cluster.PauseAt(1);
        var trainers = new[] { cluster.StartTrainer("t1"), cluster.StartTrainer("t2") };
        await cluster.PausedAt(coordinator, 1);
        Assert.Equal("t1,t2", MembersOf(coordinator.Commits[^1]));

        var ports = new List<(string What, int Port)> { ("coordinator Akka.Remote", cluster.Port) };
        foreach (var t in trainers)
        {
            string ring = await t.WaitFor("ring endpoint", cluster.Guard);
            ports.Add(($"{t.Name} ring", int.Parse(ring[(ring.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)));
            string akka = await t.WaitFor(l => AkkaPort().IsMatch(l), cluster.Guard, "the trainer's Akka.Remote address");
            ports.Add(($"{t.Name} Akka.Remote", int.Parse(AkkaPort().Match(akka).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)));
        }
        int seed = 1;
        foreach (var (what, port) in ports)
        {
            Output.WriteLine($"random bytes into {what} (port {port})");
            await Garbage(port, connections: 8, bytes: 256 << 10, seed: seed++);
        }
        foreach (var (what, port) in ports.Where(p => p.What.EndsWith(" ring", StringComparison.Ordinal)))
        {
            Output.WriteLine($"a lying frame into {what}");
            await LyingFrame(port);
        }

        // The coordinator wrote the transport's refusals of the first garbage connections in full, once per kind of
        // error, and counts the rest in one line per kind when the window ends (not a stack trace per connection).
        await coordinator.WaitFor(l => l.Contains("more like \"Error caught channel", StringComparison.Ordinal), cluster.Guard, "the count of the refusals not written");
        var lines = coordinator.Lines.ToList();
        var causes = lines.Select((l, i) => (l, i)).Where(x => x.l.Contains("] Error caught channel [", StringComparison.Ordinal))
            .Select(x => x.i + 1 < lines.Count && lines[x.i + 1].StartsWith("Cause: ", StringComparison.Ordinal) ? lines[x.i + 1].Split(':')[1].Trim() : "").ToList();
        Assert.NotEmpty(causes);
        Assert.Equal(causes.Distinct().Count(), causes.Count);
        long counted = lines.Select(l => Regex.Match(l, @"\] (\d+) more like ""Error caught channel")).Where(m => m.Success).Sum(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(causes.Count + counted >= 8, $"{causes.Count} written and {counted} counted for 8 connections");

        // Everyone is still there and the run resumes with both trainers, then ends as kto train's.
        foreach (var p in cluster.Processes()) Assert.False(p.Process.HasExited, $"{p.Name} ended");
        int before = coordinator.Commits.Count;
        Assert.Contains("resumed", KtoTool.Run(cluster.Port, "run", "resume"));
        await coordinator.WaitFor("; final checkpoint ", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        Assert.True(coordinator.Commits.Count > before);
        Assert.All(coordinator.Commits.Skip(before), c => Assert.Equal("t1,t2", MembersOf(c))); // nobody was lost to the garbage
        cluster.SingleProcessWeights();
        string ours = Path.Combine(cluster.OutputDir, $"checkpoint-{cluster.MaxSteps}"), theirs = Path.Combine(cluster.Dir, "single", $"checkpoint-{cluster.MaxSteps}");
        foreach (string file in new[] { "model.safetensors", "optimizer.safetensors" })
            Assert.True(File.ReadAllBytes(Path.Combine(ours, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(theirs, file))), $"{file} differs from kto train's");
    }
}
