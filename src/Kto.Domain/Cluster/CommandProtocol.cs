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
/// <param name="Certificate">On a cluster with TLS: the operator's certificate (DER), whose key signed the request.</param>
/// <param name="SignedAtUnixMs">When it was signed, in milliseconds since the Unix epoch (a host refuses old requests).</param>
/// <param name="Signature">ECDSA-SHA256 signature (IEEE P1363) of <see cref="SignedBytes"/> by the certificate's key.</param>
[MessagePackObject]
public sealed record CommandRequest([property: Key(0)] string Palette, [property: Key(1)] string Verb, [property: Key(2)] string[] Args,
    [property: Key(3)] bool Forwarded = false, [property: Key(4)] byte[]? Certificate = null, [property: Key(5)] long SignedAtUnixMs = 0,
    [property: Key(6)] byte[]? Signature = null) : ICommandMessage
{
    /// <summary>What the operator signs: palette, verb, arguments and the signing time (not <see cref="Forwarded"/>, which hosts set).</summary>
    public byte[] SignedBytes() => System.Text.Encoding.UTF8.GetBytes(string.Join('\0', ["kto-command-v1", Palette, Verb, .. Args, SignedAtUnixMs.ToString(System.Globalization.CultureInfo.InvariantCulture)]));
}

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

    /// <summary>The commands that only read (an operator certificate with role read may run them); every other one changes the cluster or the run.</summary>
    public static readonly IReadOnlySet<string> ReadOnly = new HashSet<string>(StringComparer.Ordinal)
    {
        "cluster show", "cluster status", "cluster leader", "run status", "run history", "run tail", "node list",
    };

    /// <summary>Whether <c>PALETTE VERB</c> only reads.</summary>
    public static bool IsReadOnly(string palette, string verb) => ReadOnly.Contains($"{palette} {verb}");
}
