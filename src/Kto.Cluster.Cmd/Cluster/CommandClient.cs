using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Actor.Setup;
using Akka.Remote.Transport.DotNetty;
using Kto.Cluster.Core;
using Kto.Cluster.Core.Security;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Cmd.Cluster;

/// <summary>
/// <c>kto HOST:PORT PALETTE VERB [ARGS]</c>, one-shot, and <c>kto HOST:PORT</c>, interactive: pbm-style commands to a
/// coordinator host (HOST:PORT is the Akka address of its host config). The tool starts a small remote-only actor
/// system (it does not join the cluster) and asks the host's command receptionist, which renders the answer.
/// </summary>
internal static class CommandClient
{
    /// <summary>How long the tool waits for an answer.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(12);

    /// <summary>Exit code when the command ran but was refused (a run state that does not allow it, an unknown node…).</summary>
    public const int Refused = 1;

    /// <summary>Exit code for a bad command line.</summary>
    public const int Usage = 2;

    /// <summary>Exit code when no coordinator host answered.</summary>
    public const int NoAnswer = 3;

    private const string Help = """
        kto HOST:PORT                      interactive (commands below; exit or quit to leave)
        kto HOST:PORT --cert OPERATOR.pfx --ca ca.crt [--password-env VAR] …
                                           on a cluster with TLS: the operator's certificate (kto certs operator;
                                           role read: show, status, leader, history, tail, list; admin: all)
        kto HOST:PORT cluster show         members: address | [roles] | status | unreachable
        kto HOST:PORT cluster status       this host: address | [roles] | status | unreachable, its view, the leader
        kto HOST:PORT cluster leader       the cluster's leader, each role's leader, the run coordinator singleton's host
        kto HOST:PORT cluster leave        the connected coordinator host leaves the cluster
        kto HOST:PORT cluster down ADDRESS mark a member down (akka.tcp://kto@host:port; akka.ssl.tcp://… with TLS)
        kto HOST:PORT cluster down-unreachable
        kto HOST:PORT cluster join ADDRESS the connected host joins the cluster at ADDRESS
        kto HOST:PORT run status           phase, committed steps, checkpoint, step in flight, trainers, scoring
        kto HOST:PORT run start RUN_CONFIG start the host's run (absolute path as the host sees it)
        kto HOST:PORT run pause | resume | stop
        kto HOST:PORT run pause --at STEPS pause once STEPS steps are committed (held in memory by the coordinator)
                                           (run resume before then cancels it)
        kto HOST:PORT run checkpoint       write a checkpoint at the next step boundary
        kto HOST:PORT run history [--since STEP]
                                           the journal: step | event | details (commits with generation and
                                           members, joins, leaves, failed attempts, checkpoints, pause/resume/stop)
        kto HOST:PORT run tail [--once]    follow commits and cluster events (until the run ends or Ctrl+C)
        kto HOST:PORT node list            trainers and scorers: held step, reachability, state
        kto HOST:PORT node drain NODE_ID   take a trainer out after its current step; it then stops
        """;

    /// <summary>Whether <paramref name="arg"/> looks like HOST:PORT (the first argument of a pbm-style command).</summary>
    public static bool IsEndpoint(string arg)
    {
        int colon = arg.LastIndexOf(':');
        return colon > 0 && !arg.Contains('/') && !arg.StartsWith('-')
            && int.TryParse(arg.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is > 0 and <= 65535;
    }

    /// <summary>The operator's certificate when the cluster uses TLS (<c>--cert</c>), which signs every request.</summary>
    private static ClusterTls? _operator;

    /// <summary>Runs <c>kto HOST:PORT [--cert FILE.pfx --ca ca.crt [--password-env VAR]] …</c>; returns the exit code.</summary>
    public static int Run(string[] args)
    {
        string endpoint = args[0];
        string host = endpoint[..endpoint.LastIndexOf(':')];
        int port = int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
        string[] rest;
        try
        {
            (_operator, rest) = OperatorOptions(args[1..]);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return Usage;
        }
        using ClusterTls? tls = _operator;
        using ActorSystem system = ClientSystem(host, port, tls);
        try
        {
            return rest.Length == 0 ? Interactive(system, endpoint) : Execute(system, endpoint, rest, interactive: false);
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>The tool's remote-only actor system facing HOST:PORT (with the operator's TLS when given).</summary>
    private static ActorSystem ClientSystem(string host, int port, ClusterTls? tls)
    {
        BootstrapSetup setup = BootstrapSetup.Create().WithConfig(ClientConfig(host, port, tls is not null));
        return tls is null ? ActorSystem.Create("kto-cmd", setup)
            : ActorSystem.Create("kto-cmd", setup.And(new DotNettySslSetup(tls.Certificate, false, true, false, HostCheck(tls))));
    }

    /// <summary>
    /// A client for programs of this tool that drive a plain local cluster (kto chaos): one actor system kept open, so a
    /// command takes milliseconds instead of a process start.
    /// </summary>
    internal sealed class Session(string endpoint) : IDisposable
    {
        private readonly ActorSystem _system = ClientSystem(endpoint[..endpoint.LastIndexOf(':')], int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture), null);

        /// <summary>Sends PALETTE VERB ARGS; the host's answer, or null when none came within the tool's time-out.</summary>
        public CommandReply? Send(string palette, string verb, params string[] args) => Ask(_system, endpoint, new CommandRequest(palette, verb, args), quiet: true);

        public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>Why the tool refused the host's certificate, if it did (the TLS handshake's own errors are not shown).</summary>
    private static string? _hostRefused;

    /// <summary>Accepts a host certificate of the cluster's CA and keeps the reason of a refusal for the error message.</summary>
    private static CertificateValidationCallback HostCheck(ClusterTls tls) => (certificate, _, _, _, _) =>
    {
        CertificateVerdict verdict = tls.Verify(certificate, CertificateHolder.Host);
        if (!verdict.Ok) _hostRefused = verdict.Reason;
        return verdict.Ok;
    };

    /// <summary>
    /// Takes <c>--cert FILE.pfx</c>, <c>--ca ca.crt</c> and <c>--password-env VAR</c> off the front of
    /// <paramref name="args"/> (or from the environment: <c>KTO_CERT</c>, <c>KTO_CA</c>, and the password in
    /// <c>KTO_CERT_PASSWORD</c>) and loads the operator's certificate; none of them means plain TCP.
    /// </summary>
    /// <exception cref="ArgumentException">An option lacks its value, or only one of the certificate and the CA is given.</exception>
    /// <exception cref="InvalidDataException">The files cannot be loaded or the certificate is not an operator certificate of that CA.</exception>
    internal static (ClusterTls? Tls, string[] Command) OperatorOptions(string[] args)
    {
        string? cert = Environment.GetEnvironmentVariable("KTO_CERT"), ca = Environment.GetEnvironmentVariable("KTO_CA");
        string? password = Environment.GetEnvironmentVariable("KTO_CERT_PASSWORD");
        int i = 0;
        for (; i < args.Length && args[i] is "--cert" or "--ca" or "--password-env"; i += 2)
        {
            if (i + 1 >= args.Length) throw new ArgumentException($"{args[i]} needs a value");
            string value = args[i + 1];
            switch (args[i])
            {
                case "--cert": cert = value; break;
                case "--ca": ca = value; break;
                default: password = Environment.GetEnvironmentVariable(value) ?? throw new ArgumentException($"--password-env: the environment variable {value} is not set"); break;
            }
        }
        if (string.IsNullOrEmpty(cert) && string.IsNullOrEmpty(ca)) return (null, args[i..]);
        if (string.IsNullOrEmpty(cert) || string.IsNullOrEmpty(ca)) throw new ArgumentException("--cert and --ca go together (an operator certificate and the cluster's CA)");
        return (ClusterTls.Load(cert, password, ca, CertificateHolder.OperatorRead, CertificateHolder.OperatorAdmin), args[i..]);
    }

    private static Config ClientConfig(string host, int port, bool tls)
    {
        string local = LocalAddressFacing(host, port);
        return ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = OFF # failures are reported by the tool's own messages (TLS handshakes would print pages)
              stdout-loglevel = OFF
              actor.provider = remote
              remote.dot-netty.tcp { hostname = "{{local}}", port = 0, enable-ssl = {{(tls ? "on" : "off")}} }
              remote.log-remote-lifecycle-events = off
              coordinated-shutdown.run-by-clr-shutdown-hook = off
            }
            """).WithFallback(PersistenceConfig.SerializerHocon());
    }

    /// <summary>The request signed with the operator's certificate, when there is one.</summary>
    private static CommandRequest Signed(CommandRequest request) => _operator is null ? request : OperatorAuth.Sign(request, _operator, DateTimeOffset.UtcNow);

    /// <summary>The local address the host can reach this tool at (loopback for a loopback host).</summary>
    private static string LocalAddressFacing(string host, int port)
    {
        if (host is "localhost" || (IPAddress.TryParse(host, out IPAddress? ip) && IPAddress.IsLoopback(ip))) return "127.0.0.1";
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(host, port); // no packet is sent: this only picks the outgoing interface
            return ((IPEndPoint)probe.LocalEndPoint!).Address.ToString();
        }
        catch (SocketException)
        {
            return Dns.GetHostName();
        }
    }

    private static int Interactive(ActorSystem system, string endpoint)
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var prompt = new InteractivePrompt($"kto {endpoint}>", new PaletteCompletion(command => ArgumentValues(system, endpoint, command)),
            home.Length > 0 ? Path.Combine(home, ".kto_history") : null);
        Console.WriteLine($"kto {endpoint}: interactive; `help` lists the commands, `exit` leaves" + (prompt.Editing ? "; Tab completes, Up and Down recall earlier commands" : ""));
        while (true)
        {
            string? line = prompt.ReadLine();
            if (line is null) return 0;
            string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (words.Length == 0) continue;
            if (words[0] is "exit" or "quit") return 0;
            Execute(system, endpoint, words, interactive: true);
        }
    }

    private static int Execute(ActorSystem system, string endpoint, string[] words, bool interactive)
    {
        if (words[0] is "help" or "--help" or "-h")
        {
            Console.WriteLine(Help);
            return 0;
        }
        if (words.Length < 2 || words[0] is not ("cluster" or "run" or "node"))
        {
            Console.Error.WriteLine($"error: expected PALETTE VERB (cluster, run or node), found \"{string.Join(' ', words)}\"\n{Help}");
            return Usage;
        }
        if (words[0] == "run" && words[1] == "tail") return Tail(system, endpoint, once: interactive || words.Contains("--once"));
        if (words[0] == "run" && words[1] == "history") return History(system, endpoint, words[2..]);
        return Ask(system, endpoint, new CommandRequest(words[0], words[1], words[2..])) is { } reply ? Show(reply) : NoAnswer;
    }

    /// <summary>What may follow "PALETTE VERB" for Tab completion, asked of the host (nothing if it does not answer within 2 s).</summary>
    internal static IReadOnlyList<string> ArgumentValues(ActorSystem system, string endpoint, string command)
    {
        if (ArgumentSource(command) is not { } request) return [];
        try
        {
            var reply = Receptionist(system, endpoint).Ask<CommandReply>(Signed(request), TimeSpan.FromSeconds(2)).GetAwaiter().GetResult();
            return reply.Ok ? ArgumentValuesIn(command, reply.Text) : [];
        }
        catch (AskTimeoutException)
        {
            return [];
        }
    }

    /// <summary>The command whose table lists what may follow "PALETTE VERB" (null: nothing the cluster knows).</summary>
    internal static CommandRequest? ArgumentSource(string command) => command switch
    {
        "node drain" => new CommandRequest("node", "list", []),
        "cluster down" or "cluster join" => new CommandRequest("cluster", "show", []),
        _ => null,
    };

    /// <summary>
    /// The values in <paramref name="table"/> (the answer to <see cref="ArgumentSource"/>, header first) that may follow
    /// <paramref name="command"/>: trainer ids of <c>node list</c>, member addresses of <c>cluster show</c>.
    /// </summary>
    internal static IReadOnlyList<string> ArgumentValuesIn(string command, string table)
    {
        Func<string[], string?> pick = command switch
        {
            "node drain" => cells => cells is [var id, "trainer", ..] ? id : null,
            "cluster down" or "cluster join" => cells => cells[0].StartsWith("akka", StringComparison.Ordinal) ? cells[0] : null,
            _ => _ => null,
        };
        return [.. table.Split('\n').Skip(1).Select(row => pick([.. row.Split('|').Select(c => c.Trim())])).OfType<string>()];
    }

    private static ActorSelection Receptionist(ActorSystem system, string endpoint) =>
        system.ActorSelection($"{(_operator is null ? HostConfig.PlainScheme : HostConfig.TlsScheme)}://{ClusterRoles.SystemName}@{endpoint}/user/{ClusterRoles.CommandActor}");

    private static int Show(CommandReply reply)
    {
        if (reply.Ok)
        {
            if (reply.Text.Length > 0) Console.WriteLine(reply.Text);
            return 0;
        }
        Console.Error.WriteLine($"error: {reply.Text}");
        return Refused;
    }

    private static CommandReply? Ask(ActorSystem system, string endpoint, CommandRequest request, bool quiet = false)
    {
        try
        {
            return Receptionist(system, endpoint).Ask<CommandReply>(Signed(request), Timeout).GetAwaiter().GetResult();
        }
        catch (AskTimeoutException)
        {
            if (quiet) return null;
            Console.Error.WriteLine($"error: no kto coordinator host answered at {endpoint} within {Timeout.TotalSeconds:0} s (is Kto.Cluster.Coordinator running there, and is this the Akka port of its host config?"
                + (_operator is null ? " If the cluster uses TLS, pass --cert OPERATOR.pfx --ca ca.crt." : " Is the certificate one of this cluster's CA? The host's log says why it refused a connection.") + ")"
                + (_hostRefused is null ? "" : $"; the host's TLS certificate was refused: {_hostRefused}"));
            return null;
        }
    }

    /// <summary>
    /// <c>run history [--since STEP]</c>: asks for the history page by page (a page is what one Akka.Remote frame
    /// holds) and prints the pages as one table.
    /// </summary>
    private static int History(ActorSystem system, string endpoint, string[] args)
    {
        if (args is not ([] or ["--since", _]) || (args.Length == 2 && !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            Console.Error.WriteLine($"error: run history takes [--since STEP] (STEP a whole number ≥ 0), found \"{string.Join(' ', args)}\"");
            return Usage;
        }
        long offset = 0;
        while (offset >= 0)
        {
            if (Ask(system, endpoint, new CommandRequest("run", "history", [.. args, "--offset", offset.ToString(CultureInfo.InvariantCulture)])) is not { } reply) return NoAnswer;
            if (!reply.Ok) return Show(reply);
            if (reply.Text.Length > 0) Console.WriteLine(reply.Text);
            offset = reply.Cursor;
        }
        return 0;
    }

    /// <summary>Prints the coordinator's recent lines, then (unless <paramref name="once"/>) new ones every second until the run ends or Ctrl+C.</summary>
    private static int Tail(ActorSystem system, string endpoint, bool once)
    {
        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        long cursor = 0;
        while (true)
        {
            if (Ask(system, endpoint, new CommandRequest("run", "tail", [cursor.ToString(CultureInfo.InvariantCulture)])) is not { } reply) return NoAnswer;
            if (!reply.Ok) return Show(reply);
            if (reply.Text.Length > 0) Console.WriteLine(reply.Text);
            cursor = reply.Cursor;
            bool ended = reply.Text.Split('\n').Any(l => l.Contains(" complete: ", StringComparison.Ordinal) || l.Contains(" stopped after ", StringComparison.Ordinal));
            if (once || ended || stop.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(1))) return 0;
        }
    }
}
