using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Kto.Cluster.Coordinator.Actors;
using Kto.Cluster.Core;
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
    public const int BadConfig = 2;

    /// <summary>The singleton's name.</summary>
    public const string SingletonName = "run-coordinator";

    /// <summary>Runs the host until SIGTERM or Ctrl+C.</summary>
    public static async Task<int> Main(string[] args)
    {
        string? configPath = Arg(args, "--config");
        string? runId = Arg(args, "--run-id");
        string? runConfigPath = Arg(args, "--run-config");
        bool exitWhenDone = args.Contains("--exit-when-done");
        if (!PositiveArg(args, "--min-trainers", 1, out int minTrainers) || !PositiveArg(args, "--scoring-window", ReferenceScoresActor.DefaultWindow, out int scoringWindow))
            return BadConfig;
        if (configPath is null || runId is null)
        {
            Console.Error.WriteLine("usage: Kto.Cluster.Coordinator --config config/coordinator.json --run-id NAME [--run-config run.json] [--min-trainers N] [--scoring-window STEPS] [--exit-when-done]");
            return BadConfig;
        }
        HostConfig config;
        RunSpec? spec = null;
        try
        {
            config = HostConfig.Load(configPath);
            if (!config.Roles.Contains(ClusterRoles.Coordinator)) throw new InvalidDataException($"{configPath}: \"roles\" must include \"{ClusterRoles.Coordinator}\" for the coordinator host");
            if (runConfigPath is not null)
            {
                KtoConfig run = KtoConfigReader.Load(runConfigPath);
                spec = RunSpec.FromConfig(runId, run, new StderrObserver());
                Directory.CreateDirectory(run.OutputDir);
                AtomicFile.WriteText(Path.Combine(run.OutputDir, TrainingLoop.RunConfigFile), KtoConfigReader.ToJson(run));
            }
        }
        catch (Exception e) when (e is InvalidDataException or ConfigException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return BadConfig;
        }
        Directory.CreateDirectory(config.RunDir);
        var (connection, provider) = config.Journal;

        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Services.AddAkka(ClusterRoles.SystemName, (akka, services) =>
        {
            var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
            Action<RunState>? onFinished = exitWhenDone ? _ => lifetime.StopApplication() : null;
            akka.AddHocon(PersistenceConfig.Hocon(connection, provider).WithFallback(FailureDetection.Hocon()), HoconAddMode.Prepend)
                .WithRemoting(config.Hostname, config.Port)
                .WithClustering(new ClusterOptions { Roles = [.. config.Roles], SeedNodes = [.. config.SeedNodes] })
                .WithSingleton<RunCoordinatorActor>(SingletonName, RunCoordinatorActor.Props(runId, startSpec: spec, onFinished: onFinished, minTrainers: minTrainers, scoringWindow: scoringWindow), new ClusterSingletonOptions { Role = ClusterRoles.Coordinator }, createProxyToo: true)
                .WithActors((system, registry) =>
                    system.ActorOf(CommandReceptionistActor.Props(registry.Get<RunCoordinatorActor>(), runId), ClusterRoles.CommandActor));
        });
        using IHost host = builder.Build();
        await host.RunAsync();
        return 0;
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
