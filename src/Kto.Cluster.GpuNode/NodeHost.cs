using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Core;
using Kto.Domain.Cluster;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// The node host: joins the cluster from a host config and runs a <see cref="TrainerNodeActor"/> on a
/// <see cref="TrainerEngine"/> that outlives the actor system. When the cluster downs this node (it lost the
/// coordinator for longer than the split-brain resolver waits), the host joins again with a fresh actor system and
/// the replica it still holds; a restarted coordinator then finds it. SIGTERM or Ctrl+C leaves gracefully: the
/// trainer asks the coordinator to leave, finishes a step it is part of, and stops once granted.
/// </summary>
public static class NodeHost
{
    /// <summary>Name of the coordinator singleton (as the coordinator host registers it).</summary>
    public const string CoordinatorSingleton = "run-coordinator";

    /// <summary>Name of the trainer actor under /user.</summary>
    public const string TrainerActorName = "trainer";

    /// <summary>How long a leaving trainer waits for the coordinator's grant.</summary>
    public static readonly TimeSpan LeaveTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Runs until SIGTERM or Ctrl+C (or <paramref name="cancel"/>).</summary>
    public static async Task RunAsync(HostConfig config, string trainerId, string dataEndpoint, CancellationToken cancel)
    {
        await using TrainerEngine engine = await TrainerEngine.StartAsync(dataEndpoint, cancel);
        Console.WriteLine($"trainer {trainerId}: ring endpoint {engine.DataEndpoint}");
        bool stopRequested = false;
        while (!cancel.IsCancellationRequested && !stopRequested)
        {
            var granted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            HostApplicationBuilder builder = Host.CreateApplicationBuilder();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = LeaveTimeout + TimeSpan.FromSeconds(10));
            builder.Services.AddAkka(ClusterRoles.SystemName, (akka, _) =>
            {
                akka.AddHocon(PersistenceConfig.SerializerHocon().WithFallback(FailureDetection.Hocon()), HoconAddMode.Prepend)
                    .WithRemoting(config.Hostname, config.Port)
                    .WithClustering(new ClusterOptions { Roles = [.. config.Roles], SeedNodes = [.. config.SeedNodes] })
                    .WithSingletonProxy<CoordinatorKey>(CoordinatorSingleton, new ClusterSingletonOptions { Role = ClusterRoles.Coordinator })
                    .WithActors((system, registry) =>
                    {
                        IActorRef coordinator = registry.Get<CoordinatorKey>();
                        system.ActorOf(TrainerNodeActor.Props(coordinator, trainerId, engine, () => granted.TrySetResult()), TrainerActorName);
                    });
            });
            using IHost host = builder.Build();
            var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
            lifetime.ApplicationStopping.Register(() =>
            {
                ActorSystem system = host.Services.GetRequiredService<ActorSystem>();
                var cluster = Akka.Cluster.Cluster.Get(system);
                if (cluster.IsTerminated || system.WhenTerminated.IsCompleted) return; // downed: not a stop request
                stopRequested = true;
                if (engine.Spec is null) return;
                Console.WriteLine($"trainer {trainerId}: leaving; waiting for the coordinator to let it go");
                system.ActorSelection("/user/" + TrainerActorName).Tell(new TrainerLeaving(trainerId));
                if (!granted.Task.Wait(LeaveTimeout)) Console.WriteLine($"trainer {trainerId}: no leave grant within {LeaveTimeout.TotalSeconds:0} s; stopping anyway");
            });
            using var stopOnCancel = cancel.Register(lifetime.StopApplication);
            _ = granted.Task.ContinueWith(_ => lifetime.StopApplication(), TaskScheduler.Default);
            await host.RunAsync(CancellationToken.None);
            if (cancel.IsCancellationRequested || stopRequested || granted.Task.IsCompleted) break;
            Console.WriteLine($"trainer {trainerId}: removed from the cluster; joining again (holding step {engine.HeldStep})");
            await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
        }
    }

    /// <summary>Registry key of the coordinator singleton proxy.</summary>
    public sealed class CoordinatorKey;
}
