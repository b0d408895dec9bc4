using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Core;
using Kto.Cluster.Core.Logging;
using Kto.Cluster.Core.Security;
using Kto.Domain.Cluster;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kto.Cluster.GpuNode;

/// <summary>
/// The node host: joins the cluster from a host config and runs, by the config's roles, a
/// <see cref="TrainerNodeActor"/> on a <see cref="TrainerEngine"/> that outlives the actor system (role
/// <c>trainer</c>) and a <see cref="ScorerNodeActor"/> (role <c>scorer</c>). When this node is downed (it saw no coordinator
/// host for <see cref="Kto.Cluster.Core.Downing.DowningPolicy.OrphanAfter"/> and downed itself, or a coordinator downed
/// it after it was unreachable, e.g. frozen), the host joins again with a fresh actor system and
/// the replica it still holds; a restarted coordinator then finds it. SIGTERM or Ctrl+C leaves gracefully: the
/// trainer asks the coordinator to leave, finishes a step it is part of, and stops once granted.
/// </summary>
public static class NodeHost
{
    /// <summary>Name of the coordinator singleton (as the coordinator host registers it).</summary>
    public const string CoordinatorSingleton = "run-coordinator";

    /// <summary>Name of the trainer actor under /user.</summary>
    public const string TrainerActorName = ClusterRoles.TrainerActor;

    /// <summary>How long a leaving trainer waits for the coordinator's grant.</summary>
    public static readonly TimeSpan LeaveTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Runs until SIGTERM or Ctrl+C (then leaves gracefully) or until <paramref name="cancel"/> (then stops at once).</summary>
    /// <param name="config">Host config; its roles say which actors run.</param>
    /// <param name="nodeId">Stable id of this node (its trainer and scorer ids).</param>
    /// <param name="dataEndpoint">host:port of the trainer's ring endpoint.</param>
    /// <param name="cancel">Stops the node at once.</param>
    /// <returns>0, or 2 when the node refused the run (its data or models differ from the run's; the reason is printed).</returns>
    /// <param name="stopWithStdin">Leave gracefully when stdin closes (<see cref="StdinWatch"/>).</param>
    /// <param name="tls">The host's TLS (host config <c>"tls"</c>): on Akka.Remote and on the gradient ring; null for plain TCP.</param>
    public static async Task<int> RunAsync(HostConfig config, string nodeId, string dataEndpoint, CancellationToken cancel, bool stopWithStdin = false, ClusterTls? tls = null)
    {
        var refused = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        string trainerId = nodeId;
        bool isTrainer = config.Roles.Contains(ClusterRoles.Trainer), isScorer = config.Roles.Contains(ClusterRoles.Scorer);
        await using TrainerEngine? engine = isTrainer ? await TrainerEngine.StartAsync(dataEndpoint, cancel, tls) : null;
        using ScorerHolder scorer = new();
        Console.WriteLine($"node {nodeId}: {Kto.Domain.Devices.NativeHeap.KeepFreedMemory()}");
        if (engine is not null) Console.WriteLine($"trainer {trainerId}: ring endpoint {engine.DataEndpoint}");
        if (isScorer) Console.WriteLine($"scorer {nodeId}: ready to score for the coordinator");
        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // the process ends once the trainer has left
            stop.Cancel();
        }
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        if (stopWithStdin) StdinWatch.Start(stop.Cancel);
        while (!cancel.IsCancellationRequested && !stop.IsCancellationRequested)
        {
            var granted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // No defaults: they would read appsettings*.json, environment variables and user secrets from the working
            // directory (a malformed appsettings.json there stopped the host) and watch that directory tree for changes
            // (inotify on every subdirectory; each write to the run's logs woke a thread). The host reads its own --config.
            HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Services.AddSingleton<IHostLifetime, SignalFreeLifetime>(); // signals are handled here, as a graceful leave
            builder.Services.AddAkka(ClusterRoles.SystemName, (akka, _) =>
            {
                akka.AddHocon(ConfigurationFactory.ParseString("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off")
                        .WithFallback(PersistenceConfig.SerializerHocon()).WithFallback(FailureDetection.Hocon()).WithFallback(SchedulerSettings.Hocon()), HoconAddMode.Prepend)
                    .WithClusterRemoting(config.Hostname, config.Port, tls, CertificateHolder.Host)
                    .ConfigureLoggers(EdgeQuietLogger.Configure)
                    .WithClustering(new ClusterOptions { Roles = [.. config.Roles], SeedNodes = [.. config.SeedNodes] })
                    .WithSingletonProxy<CoordinatorKey>(CoordinatorSingleton, new ClusterSingletonOptions { Role = ClusterRoles.Coordinator })
                    .WithActors((system, registry) =>
                    {
                        IActorRef coordinator = registry.Get<CoordinatorKey>();
                        if (engine is not null) system.ActorOf(TrainerNodeActor.Props(coordinator, trainerId, engine, () => granted.TrySetResult(), r => refused.TrySetResult(r)), TrainerActorName);
                        if (isScorer) system.ActorOf(ScorerNodeActor.Props(coordinator, nodeId, scorer), ClusterRoles.ScorerActor);
                    });
            });
            using IHost host = builder.Build();
            await host.StartAsync(CancellationToken.None);
            ActorSystem system = host.Services.GetRequiredService<ActorSystem>();
            using var either = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, cancel);
            await Task.WhenAny(system.WhenTerminated, granted.Task, refused.Task, Task.Delay(Timeout.Infinite, either.Token)).ContinueWith(_ => { }, TaskScheduler.Default);
            if (refused.Task.IsCompleted)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None); // the refusal reaches the coordinator
                await host.StopAsync(CancellationToken.None);
                Console.Error.WriteLine($"error: trainer {trainerId} cannot take part in the run: {await refused.Task}");
                return 2;
            }
            if (granted.Task.IsCompleted && !stop.IsCancellationRequested)
            {
                // Drained by the operator (kto HOST:PORT node drain): out of every future step, so the node stops.
                Console.WriteLine($"trainer {trainerId}: drained by the coordinator; stopping");
                await host.StopAsync(CancellationToken.None);
                break;
            }
            if (stop.IsCancellationRequested && !system.WhenTerminated.IsCompleted && engine?.Spec is not null)
            {
                Console.WriteLine($"trainer {trainerId}: leaving; waiting for the coordinator to let it go");
                system.ActorSelection("/user/" + TrainerActorName).Tell(new TrainerLeaving(trainerId));
                Task done = await Task.WhenAny(granted.Task, system.WhenTerminated, Task.Delay(LeaveTimeout, cancel).ContinueWith(_ => { }, TaskScheduler.Default));
                if (done != granted.Task) Console.WriteLine($"trainer {trainerId}: not let go within {LeaveTimeout.TotalSeconds:0} s; stopping anyway");
            }
            bool downed = system.WhenTerminated.IsCompleted;
            await host.StopAsync(CancellationToken.None);
            if (!downed || cancel.IsCancellationRequested || stop.IsCancellationRequested) break;
            Console.WriteLine($"node {nodeId}: removed from the cluster; joining again{(engine is null ? "" : $" (holding step {engine.HeldStep})")}");
            await Task.Delay(TimeSpan.FromSeconds(1), cancel).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        return 0;
    }

    /// <summary>A host lifetime that leaves SIGTERM and Ctrl+C to <see cref="RunAsync"/>.</summary>
    private sealed class SignalFreeLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Registry key of the coordinator singleton proxy.</summary>
    public sealed class CoordinatorKey;
}
