using System.CommandLine;
using System.Net;
using Kto.Domain.Options;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// Host of the node roles. <c>node</c> joins the coordinator's cluster as a trainer replica (see
/// <see cref="NodeHost"/>). <c>ring-train</c> runs data-parallel training on a fixed ring of processes without a
/// coordinator or elasticity (see <see cref="StaticRingTrainer"/>).
/// </summary>
public static class Program
{
    /// <summary>Exit code when no mode (node, ring-train) is given.</summary>
    public const int NotImplemented = 3;

    /// <summary>Exit code of <c>ring-train</c> when a member of the ring was lost.</summary>
    public const int RingBroken = 4;

    /// <summary>Parses the command line and runs the chosen mode.</summary>
    public static int Main(string[] args)
    {
        Kto.Domain.Devices.NativeHeap.KeepFreedMemory(); // before the first tensor: a step's freed memory is reused, not faulted in again
        var config = new Option<FileInfo>("--config") { Description = "run config (kto train's keys)", Required = true };
        var rank = new Option<int>("--rank") { Description = "this member's position in --members", Required = true };
        var members = new Option<string>("--members") { Description = "comma-separated host:port of every member, in ring order", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "where the final model is written", Required = true };
        var ringTrain = new Command("ring-train", "train on a fixed ring of processes (no coordinator, no elasticity)") { config, rank, members, output };
        ringTrain.SetAction(async (parse, cancel) =>
        {
            try
            {
                KtoConfig c = KtoConfigReader.Load(parse.GetValue(config)!.FullName);
                IPEndPoint[] ring = [.. parse.GetValue(members)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(IPEndPoint.Parse)];
                int r = parse.GetValue(rank);
                if (r < 0 || r >= ring.Length) throw new ArgumentException($"--rank {r} is not a position in the {ring.Length} members");
                return await StaticRingTrainer.RunAsync(c, r, ring, parse.GetValue(output)!.FullName, cancel);
            }
            catch (Kto.Cluster.Exchange.RingBrokenException e)
            {
                // A fixed ring cannot continue without a member; the elastic cluster retries with the survivors instead.
                Console.Error.WriteLine($"error: the ring broke: {e.Message}");
                return RingBroken;
            }
            catch (Exception e) when (e is ConfigException or ArgumentException or FormatException or InvalidDataException or IOException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        var hostConfig = new Option<FileInfo>("--config") { Description = "host config (hostname, port, seed_nodes, roles)", Required = true };
        var trainerId = new Option<string>("--node-id", "--trainer-id") { Description = "stable id of this node (its trainer and scorer id)", Required = true };
        var dataEndpoint = new Option<string>("--data-endpoint") { Description = "host:port of this trainer's ring endpoint", DefaultValueFactory = _ => "127.0.0.1:0" };
        var stopWithStdin = new Option<bool>(Kto.Cluster.Core.StdinWatch.Flag) { Description = "leave gracefully when stdin closes (the launcher that started this node is gone)" };
        var node = new Command("node", "join the cluster as a trainer replica and/or reference scorer (by the config's roles) of the run the coordinator drives") { hostConfig, trainerId, dataEndpoint, stopWithStdin };
        node.SetAction(async (parse, cancel) =>
        {
            Kto.Cluster.Core.HostConfig c;
            try
            {
                c = Kto.Cluster.Core.HostConfig.Load(parse.GetValue(hostConfig)!.FullName);
                if (!c.Roles.Contains(Kto.Cluster.Core.ClusterRoles.Trainer) && !c.Roles.Contains(Kto.Cluster.Core.ClusterRoles.Scorer))
                    throw new InvalidDataException($"{parse.GetValue(hostConfig)!.FullName}: \"roles\" must include \"trainer\" or \"scorer\" for a node");
            }
            catch (InvalidDataException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }
            Kto.Cluster.Core.Security.ClusterTls? tls;
            try
            {
                tls = c.Tls?.Open();
            }
            catch (InvalidDataException e)
            {
                Console.Error.WriteLine($"error: {parse.GetValue(hostConfig)!.FullName}: tls: {e.Message}");
                return 2;
            }
            using (tls)
                return await NodeHost.RunAsync(c, parse.GetValue(trainerId)!, parse.GetValue(dataEndpoint)!, CancellationToken.None, parse.GetValue(stopWithStdin), tls);
        });
        var root = new RootCommand("Kto.Cluster node host") { ringTrain, node };
        root.SetAction(_ =>
        {
            Console.Error.WriteLine("usage: Kto.Cluster.GpuNode node --config config/node.json --node-id ID | ring-train ...");
            return NotImplemented;
        });
        // The node handles SIGTERM and Ctrl+C itself (a graceful leave can outlast System.CommandLine's 2 s grace period).
        ParseResult parsed = root.Parse(args);
        return parsed.Invoke(parsed.CommandResult.Command == node ? new InvocationConfiguration { ProcessTerminationTimeout = null } : new InvocationConfiguration());
    }
}
