using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
using Kto.Cluster.Core.Logging;
using Kto.Cluster.Core.Security;
using Kto.Domain.Checkpoints;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kto.Cluster.Coordinator;

/// <summary>
/// Host of the <c>coordinator</c> role: joins the cluster from a host config (<c>config/coordinator.json</c>) and
/// runs the run coordinator of <c>--run-id</c> as a cluster singleton on its journal (SQLite in the run directory by
/// default). With <c>--run-config</c> it starts that run when the journal holds none yet; trainer nodes register and the
/// coordinator drives the run's steps. <c>--exit-when-done</c> stops the host once the run is complete (its final
/// checkpoint recorded) or stopped. Every coordinator host also runs the command receptionist that
/// <c>kto HOST:PORT …</c> talks to (<see cref="CommandReceptionistActor"/>).
/// </summary>
public static class Program
{
    /// <summary>Exit code for a bad command line or host config.</summary>
    public const int BadConfig = HostExitCodes.BadConfig;

    /// <summary>The singleton's name.</summary>
    public const string SingletonName = "run-coordinator";

    /// <summary>Runs the host until SIGTERM or Ctrl+C, or until its run ends with <c>--exit-when-done</c>.</summary>
    public static async Task<int> Main(string[] args)
    {
        string? configPath = Arg(args, "--config");
        string? runId = Arg(args, "--run-id");
        string? runConfigPath = Arg(args, "--run-config");
        bool exitWhenDone = args.Contains("--exit-when-done");
        bool stopWithStdin = args.Contains(StdinWatch.Flag);
        if (!PositiveArg(args, "--min-trainers", 1, out int minTrainers) || !PositiveArg(args, "--scoring-window", ReferenceScoresActor.DefaultWindow, out int scoringWindow))
            return BadConfig;
        if (configPath is null || runId is null)
        {
            Console.Error.WriteLine($"usage: Kto.Cluster.Coordinator --config config/coordinator.json --run-id NAME [--run-config run.json] [--min-trainers N] [--scoring-window STEPS] [--exit-when-done] [{StdinWatch.Flag}]");
            return BadConfig;
        }
        HostConfig config;
        ClusterTls? tls = null;
        RunSpec? spec = null;
        KtoConfig? run = null;
        try
        {
            config = HostConfig.Load(configPath);
            if (!config.Roles.Contains(ClusterRoles.Coordinator)) throw new InvalidDataException($"{configPath}: \"roles\" must include \"{ClusterRoles.Coordinator}\" for the coordinator host");
            try
            {
                tls = config.Tls?.Open();
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{configPath}: tls: {e.Message}", e);
            }
            if (runConfigPath is not null)
            {
                run = KtoConfigReader.Load(runConfigPath);
                spec = RunSpec.FromConfig(runId, run, new StderrObserver());
            }
        }
        catch (Exception e) when (e is InvalidDataException or ConfigException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return BadConfig;
        }
        Directory.CreateDirectory(config.RunDir);
        if (JournalCheck.Run(config) is { } damaged)
        {
            Console.Error.WriteLine($"error: {damaged}");
            return HostExitCodes.RunError;
        }
        using ClusterTls? hostTls = tls;
        if (tls is not null) Console.Error.WriteLine($"TLS: Akka.Remote with mutual authentication as \"{tls.Certificate.Subject}\" (CA \"{tls.Authority.Subject}\")");
        var options = new HostOptions(config, runId, spec, exitWhenDone, minTrainers, scoringWindow, stopWithStdin, tls);
        // output_dir/run_config.json is written once the journal confirms this is the run's config: never a config that does not run.
        Action? writeRunConfig = run is null ? null : () =>
        {
            Directory.CreateDirectory(run.OutputDir);
            AtomicFile.WriteText(Path.Combine(run.OutputDir, TrainingLoop.RunConfigFile), KtoConfigReader.ToJson(run));
        };
        return await RunHostAsync(options, new RunWatch(spec, writeRunConfig));
    }

    /// <summary>What one coordinator host runs, across the actor systems it starts.</summary>
    private sealed record HostOptions(HostConfig Config, string RunId, RunSpec? Spec, bool ExitWhenDone, int MinTrainers, int ScoringWindow, bool StopWithStdin, ClusterTls? Tls);

    /// <summary>
    /// Runs actor systems one after another until the run ends (with <c>--exit-when-done</c>) or a signal stops the
    /// host. A system the cluster took down (downed, or quarantined after a freeze) is replaced by a new one that joins
    /// again: being downed does not end the host (signals, a requested leave or a refused run do). Returns the exit status
    /// (<see cref="HostExitCodes"/>) and prints a one-line reason for every status but 0.
    /// </summary>
    private static async Task<int> RunHostAsync(HostOptions o, RunWatch run)
    {
        using var stop = new CancellationTokenSource();
        PosixSignal? signal = null;
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // the host leaves the cluster gracefully first
            signal ??= context.Signal;
            stop.Cancel();
        }
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        if (o.StopWithStdin)
            StdinWatch.Start(() =>
            {
                signal ??= PosixSignal.SIGTERM; // as if the launcher had sent SIGTERM
                stop.Cancel();
            });
        for (int systems = 1; ; systems++)
        {
            using IHost host = BuildHost(o, run);
            await host.StartAsync(CancellationToken.None);
            ActorSystem system = host.Services.GetRequiredService<ActorSystem>();
            Task done = o.ExitWhenDone ? run.Finished : Task.Delay(Timeout.Infinite, CancellationToken.None);
            await Task.WhenAny(system.WhenTerminated, done, run.Refused, Task.Delay(Timeout.Infinite, stop.Token)).ContinueWith(_ => { }, TaskScheduler.Default);
            await host.StopAsync(CancellationToken.None);
            if (run.Refused.IsCompleted)
            {
                Console.Error.WriteLine($"error: {await run.Refused}");
                return HostExitCodes.RunError;
            }
            if (done.IsCompleted) return HostExitCodes.Done;
            if (stop.IsCancellationRequested) return HostExitCodes.ForSignal(signal, run.Latest, o.RunId);
            if (CoordinatedShutdown.Get(system).ShutdownReason is CoordinatedShutdown.ClusterLeavingReason) return HostExitCodes.ForLeave(run.Latest, o.RunId);
            Console.Error.WriteLine($"coordinator host removed from the cluster (actor system {systems} ended); joining again as a new incarnation");
            await Task.Delay(RejoinDelay, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            if (stop.IsCancellationRequested) return HostExitCodes.ForSignal(signal, run.Latest, o.RunId);
        }
    }

    /// <summary>Pause between an actor system the cluster took down and the next (lets the port and the old association go).</summary>
    public static readonly TimeSpan RejoinDelay = TimeSpan.FromSeconds(1);

    private static IHost BuildHost(HostOptions o, RunWatch run)
    {
        var (connection, provider) = o.Config.Journal;
        // No defaults: they would read appsettings*.json, environment variables and user secrets from the working
        // directory (a malformed appsettings.json there stopped the host) and watch that directory tree for changes
        // (inotify on every subdirectory; each write to the run's logs woke a thread). The host reads its own --config.
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<IHostLifetime, SignalFreeLifetime>(); // signals are handled by RunHostAsync
        builder.Services.AddAkka(ClusterRoles.SystemName, (akka, _) =>
        {
            akka.AddHocon(ConfigurationFactory.ParseString("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off")
                    .WithFallback(PersistenceConfig.Hocon(connection, provider)).WithFallback(FailureDetection.Hocon()).WithFallback(SchedulerSettings.Hocon()), HoconAddMode.Prepend)
                // Hosts, and on connections they open, operators (the kto HOST:PORT tool talks to coordinator hosts).
                .WithClusterRemoting(o.Config.Hostname, o.Config.Port, o.Tls, CertificateHolder.Host, CertificateHolder.OperatorRead, CertificateHolder.OperatorAdmin)
                .ConfigureLoggers(EdgeQuietLogger.Configure)
                .WithClustering(new ClusterOptions { Roles = [.. o.Config.Roles], SeedNodes = [.. o.Config.SeedNodes] })
                .WithSingleton<RunCoordinatorActor>(SingletonName, RunCoordinatorSupervisor.Props(RunCoordinatorActor.Props(o.RunId, startSpec: o.Spec, onFinished: run.OnFinished,
                    minTrainers: o.MinTrainers, scoringWindow: o.ScoringWindow, onChanged: run.OnChanged, onRefused: run.OnRefused), o.RunId, o.Config.JournalName, run.OnRefused),
                    new ClusterSingletonOptions { Role = ClusterRoles.Coordinator }, createProxyToo: true)
                .WithActors((system, registry) =>
                    system.ActorOf(CommandReceptionistActor.Props(registry.Get<RunCoordinatorActor>(), o.RunId, o.Tls), ClusterRoles.CommandActor));
        });
        return builder.Build();
    }

    /// <summary>A host lifetime that leaves SIGTERM and Ctrl+C to <see cref="RunHostAsync"/>.</summary>
    private sealed class SignalFreeLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class StderrObserver : ITrainingObserver
    {
        public void Info(string message) => Console.Error.WriteLine(message);

        public void Warn(string message) => Console.Error.WriteLine($"warning: {message}");

        public void Progress(ProgressUpdate update)
        {
        }
    }

    private static bool PositiveArg(string[] args, string name, int fallback, out int value)
    {
        value = fallback;
        if (Arg(args, name) is not { } text) return true;
        if (int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out value) && value >= 1) return true;
        Console.Error.WriteLine($"error: {name}: expected a positive integer, found \"{text}\"");
        return false;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
