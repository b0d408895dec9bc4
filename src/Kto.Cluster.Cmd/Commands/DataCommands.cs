using System.CommandLine;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto data …</c>: synthetic task data and program-checked feedback.</summary>
internal static class DataCommands
{
    public static Command Create() => new("data", "synthetic task data, feedback labelling, and a preview of data as the trainer sees it")
    {
        TokenizerCommands.Preview(),
        new Command("synth", "write synthetic prompts or supervised rows of a verifiable task") { SynthCommand.Addition() },
        LabelCommand.Create(),
    };
}
