using MessagePack;

namespace Kto.Domain.Cluster;

/// <summary>
/// The operator's commands (the <c>kto HOST:PORT PALETTE VERB …</c> tool) to a coordinator host's command receptionist,
/// and its answers, rendered on the host as pbm does.
/// </summary>
[Union(0, typeof(CommandRequest))]
[Union(1, typeof(CommandReply))]
public interface ICommandMessage : IKtoMessage;

/// <summary>A command: palette (<c>cluster</c>, <c>run</c>, <c>node</c>), verb and arguments.</summary>
/// <param name="Palette">cluster, run or node.</param>
/// <param name="Verb">What to do.</param>
/// <param name="Args">Its arguments.</param>
/// <param name="Forwarded">Set when a coordinator host passed the command on to the one holding the run coordinator.</param>
[MessagePackObject]
public sealed record CommandRequest([property: Key(0)] string Palette, [property: Key(1)] string Verb, [property: Key(2)] string[] Args,
    [property: Key(3)] bool Forwarded = false) : ICommandMessage;

/// <summary>The answer: whether the command was carried out, the text to show, and for <c>run tail</c> the cursor to ask from next.</summary>
[MessagePackObject]
public sealed record CommandReply([property: Key(0)] bool Ok, [property: Key(1)] string Text, [property: Key(2)] long Cursor = 0) : ICommandMessage;

/// <summary>The palettes and their verbs, as the receptionist answers them (the tool's completion and error messages list them).</summary>
public static class CommandPalettes
{
    /// <summary>Palette → verbs, in the order the help lists them.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Verbs = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
    {
        ["cluster"] = ["show", "status", "leader", "leave", "down", "down-unreachable", "join"],
        ["run"] = ["status", "start", "pause", "resume", "stop", "checkpoint", "history", "tail"],
        ["node"] = ["list", "drain"],
    };
}
