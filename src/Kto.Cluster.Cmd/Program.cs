using System.CommandLine;
using Kto.Cluster.Cmd.Commands;

namespace Kto.Cluster.Cmd;

/// <summary>Entry point of the <c>kto</c> tool.</summary>
public static class Program
{
    /// <summary>Parses the command line and runs the chosen command; returns the exit code.</summary>
    public static int Main(string[] args)
    {
        Kto.Domain.Devices.NativeHeap.KeepFreedMemory(); // before the first tensor: a step's freed memory is reused, not faulted in again
        // pbm-style: kto HOST:PORT [PALETTE VERB ARGS] talks to a coordinator host.
        if (args.Length > 0 && Cluster.CommandClient.IsEndpoint(args[0])) return Cluster.CommandClient.Run(args);
        var root = new RootCommand("kto — KTO training for language models from thumbs-up/down feedback")
        {
            DemoCommand.Create(),
            UpCommand.Create(),
            ChaosCommand.Create(),
            TrainCommand.Create(),
            SftCommand.Create(),
            ScoreCommand.Create(),
            BenchCommands.Create(),
            ModelCommands.Create(),
            PlotCommand.Create(),
            GenerateCommand.Create(),
            DataCommands.Create(),
            TokenizerCommands.Tokenize(),
            MergeCommand.Create(),
            EvalCommand.Create(),
            CertsCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
