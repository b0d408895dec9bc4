using System.CommandLine;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>Options several commands share.</summary>
internal static class CommonOptions
{
    /// <summary><c>--device cpu|cuda[:n]</c>.</summary>
    /// <summary><c>--adapter DIR</c>: a PEFT LoRA adapter (ours or PEFT's) to put on the model.</summary>
    public static Option<DirectoryInfo?> Adapter() => new("--adapter") { Description = "a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to apply to --model" };

    /// <summary>The checkpoint in <paramref name="modelDir"/> on <paramref name="device"/>, with the adapter in <paramref name="adapterDir"/> when given.</summary>
    public static Kto.Domain.Model.CausalLm LoadModel(string modelDir, string? adapterDir, TorchSharp.torch.Device device)
    {
        Kto.Domain.Model.CausalLm model = Kto.Domain.Checkpoints.ModelCheckpoint.Load(modelDir, device);
        if (adapterDir is not null)
        {
            try
            {
                Kto.Domain.Model.LoraAdapters.Load(model, adapterDir);
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        return model;
    }

    public static Option<string> Device() => new("--device")
    {
        Description = "where tensors live: cpu, cuda or cuda:N (CUDA needs a build with -p:KtoTorchBackend=cuda)",
        DefaultValueFactory = _ => "cpu",
    };

    /// <summary><c>--threads N</c>.</summary>
    public static Option<int> Threads(int defaultValue) => new("--threads")
    {
        Description = "CPU threads for tensor math (0 = library default)",
        DefaultValueFactory = _ => defaultValue,
    };

    /// <summary>
    /// A token cancelled by SIGINT or SIGTERM, which no longer end the process by themselves (long-running commands
    /// stop their processes first); dispose the registration when done.
    /// </summary>
    public static (CancellationTokenSource Stop, IDisposable Registration) CancelOnSignals()
    {
        var stop = new CancellationTokenSource();
        void OnSignal(System.Runtime.InteropServices.PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
        var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
        var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
        return (stop, new Registrations(sigint, sigterm, stop));
    }

    private sealed class Registrations(params IDisposable[] all) : IDisposable
    {
        public void Dispose()
        {
            foreach (IDisposable d in all) d.Dispose();
        }
    }

    /// <summary>Runs <paramref name="body"/>, turning expected failures into a one-line error and exit code 1.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is Kto.Domain.Options.ConfigException or Kto.Domain.Data.DataException
            or InvalidDataException or OperationCanceledException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or InvalidOperationException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
