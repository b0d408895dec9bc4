using System.Diagnostics;

namespace Kto.Cluster.Tests.Rig;

/// <summary>
/// A fact that needs scripts/netns-rig.sh to work here: root, iproute2, util-linux's setpriv and nftables, and
/// permission to create a network namespace. Skipped (visibly, with the reason) otherwise; .ci/run installs the packages.
/// </summary>
public sealed class RigFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Missing = new(Probe);

    /// <summary>Sets Skip when the rig cannot run here.</summary>
    public RigFactAttribute()
    {
        if (Missing.Value is { } reason) Skip = $"the network rig cannot run here: {reason}";
    }

    private static string? Probe()
    {
        foreach (string tool in new[] { "ip", "tc", "nft", "setpriv" })
            if (NetRig.Run("sh", "-c", $"command -v {tool}").Code != 0) return $"{tool} not found (Debian packages iproute2, nftables, util-linux)";
        string name = $"kto-rig-probe-{Environment.ProcessId}";
        var (code, error) = NetRig.Run("ip", "netns", "add", name);
        if (code != 0) return $"ip netns add: {error.Trim()}";
        NetRig.Run("ip", "netns", "del", name);
        return null;
    }
}

/// <summary>
/// A namespace made by scripts/netns-rig.sh for one test: processes started through <see cref="Wrap"/> run in it as
/// separate boxes, and <see cref="Cut"/>/<see cref="Heal"/> change which boxes reach which. Disposing removes it.
/// </summary>
public sealed class NetRig : IDisposable
{
    private NetRig(string name) => Name = name;

    /// <summary>The namespace's name.</summary>
    public string Name { get; }

    /// <summary>The repository's scripts/netns-rig.sh (found from the test's bin folder).</summary>
    public static string Script
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "scripts", "netns-rig.sh"))) return Path.Combine(d.FullName, "scripts", "netns-rig.sh");
            throw new FileNotFoundException("scripts/netns-rig.sh not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>Makes a namespace (rate in tc's units, e.g. "1gbit"; loss in percent).</summary>
    /// <exception cref="InvalidOperationException">The script failed (its stderr is the message).</exception>
    public static NetRig Up(string? rate = null, int loss = 0)
    {
        string name = $"kto-rig-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
        List<string> args = ["up", "--name", name, "--loss", loss.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        if (rate is not null) args.AddRange(["--rate", rate]);
        Script_(args);
        return new NetRig(name);
    }

    /// <summary>The process start info that runs <paramref name="file"/> <paramref name="args"/> in the namespace, as box <paramref name="box"/> (1–64) or as this user when null.</summary>
    public ProcessStartInfo Wrap(int? box, string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        List<string> all = [Script, "exec", Name];
        if (box is { } b) all.AddRange(["--as", b.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        all.AddRange(["--", file, .. args]);
        foreach (string a in all) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>Adds cuts (the script's cut arguments, e.g. "--between", "1", "--and", "2,3").</summary>
    public void Cut(params string[] cut) => Script_(["cut", Name, .. cut]);

    /// <summary>Removes every cut.</summary>
    public void Heal() => Script_(["heal", Name]);

    /// <inheritdoc />
    public void Dispose() => Run("ip", "netns", "del", Name);

    private static void Script_(IEnumerable<string> args)
    {
        var (code, error) = Run("bash", [Script, .. args]);
        if (code != 0) throw new InvalidOperationException($"netns-rig.sh {string.Join(' ', args)}: exit {code}: {error.Trim()}");
    }

    internal static (int Code, string Error) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            Task<string> err = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (127, e.Message);
        }
    }
}
