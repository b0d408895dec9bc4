using System.Net;
using Kto.Cluster.Exchange;
using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// Data-parallel training on a fixed ring of processes, without a coordinator: every member runs the same plan, its
/// shard of each micro-batch, and the two reductions of <see cref="ReplicaStep"/> over TCP. No elasticity and no
/// fault tolerance: a member lost ends the run. It is the trainer replica's compute path, runnable on its own, and
/// what the multi-process equivalence test drives.
/// </summary>
public static class StaticRingTrainer
{
    /// <summary>How long members wait for each other to connect.</summary>
    public static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Trains <paramref name="config"/> as member <paramref name="rank"/> of <paramref name="members"/>; writes the final model to <paramref name="outputDir"/>.</summary>
    public static async Task<int> RunAsync(KtoConfig config, int rank, IReadOnlyList<IPEndPoint> members, string outputDir, CancellationToken cancel)
    {
        using TrainingSetup setup = TrainingSetup.Prepare(config, NullObserver.Instance);
        using var replica = new ReplicaTrainer(setup);
        await using RingEndpoint endpoint = await RingEndpoint.ListenAsync(members[rank].Address, members[rank].Port, cancel);
        await using Ring ring = await endpoint.JoinAsync(members, rank, generation: 1, JoinTimeout, cancel);
        var group = new RingAllReduce(ring, cancel);
        for (int step = 0; step < replica.TotalSteps; step++)
        {
            var (metrics, checksum) = replica.Reduce(step, group);
            double norm = replica.Apply(step);
            var m = metrics.ToDictionary();
            Console.WriteLine(FormattableString.Invariant($"step {step + 1}/{replica.TotalSteps} loss {m["loss"]:0.000000} grad_norm {norm:0.000000} checksum {checksum:x16}"));
        }
        ModelCheckpoint.Save(setup.Policy, outputDir);
        return 0;
    }
}
