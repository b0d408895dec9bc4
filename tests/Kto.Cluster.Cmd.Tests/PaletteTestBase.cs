using Kto.Cluster.Testing;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>
/// What the tests of the palettes and of <c>kto up</c>'s lifecycle share: a temp folder, a machine slot
/// (<see cref="MachineSlot"/>), a tiny run config, coordinator host processes and polling of a palette command. Each
/// derived class is its own xunit collection, so two of them can run at once, one per slot.
/// </summary>
public abstract partial class PaletteTestBase : IDisposable
{
    /// <summary>The test's own folder (deleted afterwards).</summary>
    protected string Dir { get; } = Directory.CreateTempSubdirectory("kto-palette-").FullName;

    private readonly MachineSlot _slot = MachineSlot.Take();

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (!disposing) return;
        _slot.Dispose();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // a process may still be letting go of a file
        }
    }

    protected static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"(\d+)/\d+ steps committed")]
    private static partial Regex Committed();

    protected static int CommittedIn(string status) => int.Parse(Committed().Match(status).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Runs a palette command until <paramref name="done"/> holds for its output (a hang guard of 2 minutes).</summary>
    private protected KtoProcess.Result Until(string endpoint, Func<KtoProcess.Result, bool> done, params string[] command)
    {
        var guard = Stopwatch.StartNew();
        while (true)
        {
            var r = KtoProcess.Run(Dir, [endpoint, .. command]);
            if (done(r)) return r;
            if (guard.Elapsed > TimeSpan.FromMinutes(2)) throw new TimeoutException($"kto {endpoint} {string.Join(' ', command)} never gave the expected output; last: {r.Stdout}{r.Stderr}");
            Thread.Sleep(300);
        }
    }

    /// <summary>A run config over the shipped tiny example, writing into this test's folder.</summary>
    protected string TinyRun(int maxSteps)
    {
        string tiny = Path.Combine(KtoProcess.RepoRoot(), "examples", "tiny");
        string runConfig = Path.Combine(Dir, "run.json");
        File.WriteAllText(runConfig, $$"""
            {"model_name_or_path": {{System.Text.Json.JsonSerializer.Serialize(Path.Combine(tiny, "model"))}},
             "dataset_path": {{System.Text.Json.JsonSerializer.Serialize(Path.Combine(tiny, "feedback.jsonl"))}},
             "output_dir": {{System.Text.Json.JsonSerializer.Serialize(Path.Combine(Dir, "out"))}}, "per_device_train_batch_size": 8,
             "max_steps": {{maxSteps}}, "save_steps": 100000, "max_length": 32, "max_prompt_length": 16, "learning_rate": 1e-4,
             "num_threads": 1, "logging_steps": 50}
            """);
        return runConfig;
    }

    /// <summary>Starts a coordinator host process (output drained).</summary>
    protected Process StartCoordinatorHost(string hostConfig, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = Dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "Kto.Cluster.Coordinator.dll"), "--config", hostConfig, .. args])
            psi.ArgumentList.Add(a);
        Process p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        return p;
    }

}
