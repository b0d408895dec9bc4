using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kto.Cluster.Coordinator;

/// <summary>
/// Host of the <c>coordinator</c> role: joins the cluster from a host config (<c>config/coordinator.json</c>) and
/// runs the run coordinator of <c>--run-id</c> as a cluster singleton on its journal (SQLite in the run directory by
/// default). Trainer nodes register with it; what it does not do yet is drive training steps, so no run advances.
/// </summary>
public static class Program
{
    /// <summary>Exit code for a bad command line or host config.</summary>
    public const int BadConfig = 2;

    /// <summary>The singleton's name.</summary>
    public const string SingletonName = "run-coordinator";

    /// <summary>Runs the host until SIGTERM or Ctrl+C.</summary>
    public static async Task<int> Main(string[] args)
    {
        string? configPath = Arg(args, "--config");
        string? runId = Arg(args, "--run-id");
        if (configPath is null || runId is null)
        {
            Console.Error.WriteLine("usage: Kto.Cluster.Coordinator --config config/coordinator.json --run-id NAME");
            return BadConfig;
        }
        HostConfig config;
        try
        {
            config = HostConfig.Load(configPath);
            if (!config.Roles.Contains(ClusterRoles.Coordinator)) throw new InvalidDataException($"{configPath}: \"roles\" must include \"{ClusterRoles.Coordinator}\" for the coordinator host");
        }
        catch (InvalidDataException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return BadConfig;
        }
        Directory.CreateDirectory(config.RunDir);
        var (connection, provider) = config.Journal;

        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Services.AddAkka(ClusterRoles.SystemName, (akka, _) =>
        {
            akka.AddHocon(PersistenceConfig.Hocon(connection, provider).WithFallback(FailureDetection.Hocon()), HoconAddMode.Prepend)
                .WithRemoting(config.Hostname, config.Port)
                .WithClustering(new ClusterOptions { Roles = [.. config.Roles], SeedNodes = [.. config.SeedNodes] })
                .WithSingleton<RunCoordinatorActor>(SingletonName, RunCoordinatorActor.Props(runId), new ClusterSingletonOptions { Role = ClusterRoles.Coordinator }, createProxyToo: false);
        });
        using IHost host = builder.Build();
        await host.RunAsync();
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
