using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kto.Cluster.GpuNode;

/// <summary>The node host: joins the cluster from a host config and runs a <see cref="TrainerNodeActor"/>.</summary>
public static class NodeHost
{
    /// <summary>Name of the coordinator singleton (as the coordinator host registers it).</summary>
    public const string CoordinatorSingleton = "run-coordinator";

    /// <summary>Runs until SIGTERM or Ctrl+C.</summary>
    public static async Task RunAsync(HostConfig config, string trainerId, string dataEndpoint, CancellationToken cancel)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Services.AddAkka(ClusterRoles.SystemName, (akka, _) =>
        {
            akka.AddHocon(PersistenceConfig.SerializerHocon().WithFallback(FailureDetection.Hocon()), HoconAddMode.Prepend)
                .WithRemoting(config.Hostname, config.Port)
                .WithClustering(new ClusterOptions { Roles = [.. config.Roles], SeedNodes = [.. config.SeedNodes] })
                .WithSingletonProxy<CoordinatorKey>(CoordinatorSingleton, new ClusterSingletonOptions { Role = ClusterRoles.Coordinator })
                .WithActors((system, registry) =>
                {
                    IActorRef coordinator = registry.Get<CoordinatorKey>();
                    system.ActorOf(TrainerNodeActor.Props(coordinator, trainerId, dataEndpoint), "trainer");
                });
        });
        using IHost host = builder.Build();
        await host.RunAsync(cancel);
    }

    /// <summary>Registry key of the coordinator singleton proxy.</summary>
    public sealed class CoordinatorKey;
}
