using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Kto.Cluster.Core.Security;
using Kto.Domain.Cluster;
using Kto.Domain.Options;
using Kto.Domain.Training;

namespace Kto.Cluster.Coordinator.Actors;

/// <summary>
/// What the <c>kto HOST:PORT PALETTE VERB …</c> tool talks to, on every coordinator host (at
/// <c>/user/kto-cmd</c>): the <c>cluster</c> palette acts on Akka.Cluster membership, the <c>run</c> and <c>node</c>
/// palettes go to the run coordinator singleton. Every answer is a <see cref="CommandReply"/> with text rendered here,
/// in pbm's style (<c>address | [roles] | status | unreachable</c>).
/// </summary>
public sealed class CommandReceptionistActor : ReceiveActor
{
    /// <summary>How long the receptionist waits for the run coordinator.</summary>
    public static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(8);

    private readonly IActorRef _coordinator;
    private readonly string _runId;

    /// <summary>Creates the receptionist of the coordinator host driving run <paramref name="runId"/>.</summary>
    /// <param name="coordinator">The run coordinator singleton's proxy.</param>
    /// <param name="runId">The run this host drives.</param>
    /// <param name="tls">The host's TLS: when set, every command must be signed by an operator certificate of the
    /// cluster's CA allowed to run it (<see cref="OperatorAuth"/>); when null, commands are taken from anyone who reaches the port.</param>
    public CommandReceptionistActor(IActorRef coordinator, string runId, ClusterTls? tls = null)
    {
        _coordinator = coordinator;
        _runId = runId;
        ReceiveAsync<CommandRequest>(async request =>
        {
            IActorRef sender = Sender;
            if (tls is not null && OperatorAuth.Refusal(request, tls, DateTimeOffset.UtcNow) is { } refusal)
            {
                Context.GetLogger().Warning("operator command from {0}: {1}", sender.Path.Address, refusal);
                sender.Tell(new CommandReply(false, refusal));
                return;
            }
            // run and node commands are answered by the receptionist next to the run coordinator singleton, so that
            // only Kto protocol messages cross the network.
            if (request.Palette is "run" or "node" && SingletonHost() is { } host && !host.Equals(Cluster.SelfAddress) && !request.Forwarded)
            {
                Context.ActorSelection(new RootActorPath(host) / "user" / Kto.Cluster.Core.ClusterRoles.CommandActor).Tell(request with { Forwarded = true }, sender);
                return;
            }
            CommandReply reply;
            try
            {
                reply = await Handle(request);
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException or TimeoutException)
            {
                reply = new CommandReply(false, "the run coordinator did not answer in time (it may be recovering or moving to another coordinator host); try again");
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException or ConfigException or IOException or UriFormatException)
            {
                reply = new CommandReply(false, e.Message);
            }
            sender.Tell(reply);
        });
    }

    /// <summary>Props of the receptionist.</summary>
    public static Props Props(IActorRef coordinator, string runId, ClusterTls? tls = null) => Akka.Actor.Props.Create(() => new CommandReceptionistActor(coordinator, runId, tls));

    private Akka.Cluster.Cluster Cluster => Akka.Cluster.Cluster.Get(Context.System);

    /// <summary>Where the run coordinator singleton lives: the oldest Up coordinator host (null outside a cluster).</summary>
    private Address? SingletonHost()
    {
        if (!Context.System.Settings.ProviderClass.Contains("Cluster", StringComparison.Ordinal)) return null;
        return Cluster.State.Members.Where(m => m.HasRole(Kto.Cluster.Core.ClusterRoles.Coordinator) && m.Status is MemberStatus.Up or MemberStatus.Leaving)
            .OrderBy(m => m, Member.AgeOrdering).FirstOrDefault()?.Address;
    }

    private Task<CommandReply> Handle(CommandRequest r) => (r.Palette, r.Verb) switch
    {
        ("cluster", "show") => Task.FromResult(ClusterShow()),
        ("cluster", "status") => Task.FromResult(ThisHostStatus()),
        ("cluster", "leader") => Task.FromResult(Leaders()),
        ("cluster", "leave") => Task.FromResult(Leave()),
        ("cluster", "down") => Task.FromResult(Down(Arg(r, 0, "ADDRESS"))),
        ("cluster", "down-unreachable") => Task.FromResult(DownUnreachable()),
        ("cluster", "join") => Task.FromResult(Join(Arg(r, 0, "ADDRESS"))),
        ("run", "status") => RunStatus(),
        ("run", "start") => Start(Arg(r, 0, "RUN_CONFIG")),
        ("run", "pause") when r.Args.Length == 0 => Command(new PauseRun(), s => $"run {_runId} paused at {s.CommittedSteps} committed steps (the step in flight, if any, is not committed)"),
        ("run", "pause") => PauseAt(r.Args),
        ("run", "resume") => Command(new ResumeRun(), s => $"run {_runId} resumed at {s.CommittedSteps} committed steps"),
        ("run", "stop") => Command(new StopRun(), s => $"run {_runId} stopped for good after {s.CommittedSteps} committed steps"),
        ("run", "checkpoint") => Command(new RequestCheckpoint(), s => $"a checkpoint of run {_runId} will be written at the next step boundary (now {s.CommittedSteps} committed steps); `run tail` shows it recorded"),
        ("run", "history") => History(r.Args),
        ("run", "tail") => Tail(r.Args.Length > 0 ? long.Parse(r.Args[0], CultureInfo.InvariantCulture) : 0),
        ("node", "list") => NodeList(),
        ("node", "drain") => Drain(Arg(r, 0, "NODE_ID")),
        _ => Task.FromResult(new CommandReply(false, $"unknown command \"{r.Palette} {r.Verb}\"" + (CommandPalettes.Verbs.TryGetValue(r.Palette, out var verbs)
            ? $"; {r.Palette} has: {string.Join(", ", verbs)}"
            : $"; palettes: {string.Join(", ", CommandPalettes.Verbs.Keys)}"))),
    };

    private static string Arg(CommandRequest r, int i, string name) =>
        r.Args.Length > i ? r.Args[i] : throw new ArgumentException($"{r.Palette} {r.Verb}: missing {name}");

    private static string Table(IEnumerable<string[]> rows)
    {
        var all = rows.ToList();
        int[] widths = [.. Enumerable.Range(0, all[0].Length).Select(c => all.Max(row => row[c].Length))];
        var sb = new StringBuilder();
        foreach (string[] row in all) sb.AppendLine(string.Join(" | ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c]))));
        return sb.ToString().TrimEnd();
    }

    private CommandReply ClusterShow()
    {
        ClusterEvent.CurrentClusterState state = Cluster.State;
        var rows = new List<string[]> { new[] { "address", "roles", "status", "unreachable" } };
        rows.AddRange(state.Members.OrderBy(m => m.Address.ToString(), StringComparer.Ordinal).Select(m => new[]
        {
            m.Address.ToString(), $"[{string.Join(",", m.Roles.Order(StringComparer.Ordinal))}]", m.Status.ToString(),
            state.Unreachable.Contains(m) ? "true" : "false",
        }));
        return new CommandReply(true, Table(rows));
    }

    private static string RolesOf(Member m) => $"[{string.Join(",", m.Roles.Order(StringComparer.Ordinal))}]";

    /// <summary><c>cluster status</c>: this host's own member row (pbm's columns) and how it sees the cluster.</summary>
    private CommandReply ThisHostStatus()
    {
        ClusterEvent.CurrentClusterState state = Cluster.State;
        Member self = Cluster.SelfMember;
        int up = state.Members.Count(m => m.Status == MemberStatus.Up);
        var sb = new StringBuilder();
        sb.AppendLine(Table([
            ["address", "roles", "status", "unreachable"],
            [self.Address.ToString(), RolesOf(self), self.Status.ToString(), state.Unreachable.Contains(self) ? "true" : "false"],
        ]));
        sb.AppendLine(CultureInfo.InvariantCulture, $"sees {state.Members.Count} members ({up} up), {state.Unreachable.Count} unreachable");
        sb.AppendLine($"leader: {(state.Leader is { } l ? l + (l.Equals(self.Address) ? " (this host)" : "") : "none")}");
        sb.Append(SingletonHost() is { } host ? $"run coordinator singleton: {(host.Equals(self.Address) ? "on this host" : $"on {host}")}" : "run coordinator singleton: no coordinator host is up");
        return new CommandReply(true, sb.ToString());
    }

    /// <summary>
    /// <c>cluster leader</c>: Akka's cluster leader (the member that moves others to Up and to Removed), the leader of
    /// each role, and the host of the run coordinator singleton (the oldest Up coordinator host, which is not the leader
    /// in general).
    /// </summary>
    private CommandReply Leaders()
    {
        ClusterEvent.CurrentClusterState state = Cluster.State;
        var rows = new List<string[]> { new[] { "leader of", "address" }, new[] { "cluster", state.Leader?.ToString() ?? "none" } };
        rows.AddRange(state.AllRoles.Order(StringComparer.Ordinal).Select(role => new[] { $"role {role}", state.RoleLeader(role)?.ToString() ?? "none" }));
        rows.Add(["run coordinator singleton", SingletonHost()?.ToString() ?? "none (no coordinator host is up)"]);
        return new CommandReply(true, Table(rows));
    }

    /// <summary>The most characters of history one reply carries (Akka.Remote's frames hold 128,000 bytes); the tool asks for the rest.</summary>
    private const int HistoryPageChars = 48_000;

    /// <summary>
    /// <c>run history [--since STEP] [--offset N]</c>: the run's journal as <c>step | event | details</c> rows
    /// (<see cref="RunHistory"/>), from STEP committed steps on, the header and rows from entry N on, at most
    /// <see cref="HistoryPageChars"/> characters; the reply's cursor is the next entry to ask for, -1 after the last.
    /// Column widths come from all the rows, so the pages join into one table.
    /// </summary>
    private async Task<CommandReply> History(string[] args)
    {
        int since = 0, offset = 0;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--since": since = NonNegative(args, ++i, "--since STEP"); break;
                case "--offset": offset = NonNegative(args, ++i, "--offset N"); break;
                default: throw new ArgumentException($"run history: unknown argument \"{args[i]}\" (expected --since STEP)");
            }
        }
        IReadOnlyList<IRunEvent> events = await JournalReader.ReadAsync(Context.System, _runId).WaitAsync(AskTimeout);
        IReadOnlyList<HistoryEntry> entries = RunHistory.Of(events, since);
        if (entries.Count == 0)
            return new CommandReply(true, events.Count == 0 ? $"run {_runId}: nothing in its journal yet (not started)" : $"run {_runId}: nothing from step {since} on", -1);
        int stepWidth = Math.Max("step".Length, entries.Max(e => e.Step.ToString(CultureInfo.InvariantCulture).Length));
        int eventWidth = Math.Max("event".Length, entries.Max(e => e.Event.Length));
        var sb = new StringBuilder();
        if (offset == 0) sb.Append("step".PadRight(stepWidth)).Append(" | ").Append("event".PadRight(eventWidth)).Append(" | details");
        int next = offset;
        for (; next < entries.Count && sb.Length < HistoryPageChars; next++)
        {
            HistoryEntry e = entries[next];
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(e.Step.ToString(CultureInfo.InvariantCulture).PadLeft(stepWidth)).Append(" | ").Append(e.Event.PadRight(eventWidth)).Append(" | ").Append(e.Details);
        }
        return new CommandReply(true, sb.ToString(), next < entries.Count ? next : -1);
    }

    private static int NonNegative(string[] args, int i, string what) =>
        i < args.Length && int.TryParse(args[i], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            ? n
            : throw new ArgumentException($"run history: {what} takes a whole number ≥ 0{(i < args.Length ? $", found \"{args[i]}\"" : "")}");

    private CommandReply Leave()
    {
        Cluster.Leave(Cluster.SelfAddress);
        return new CommandReply(true, $"{Cluster.SelfAddress} is leaving the cluster (its coordinator singleton, if it holds it, moves to another coordinator host)");
    }

    private Member FindMember(string address)
    {
        Address parsed = Address.Parse(address);
        return Cluster.State.Members.FirstOrDefault(m => m.Address.Equals(parsed))
            ?? throw new ArgumentException($"{address} is not a member; members: {string.Join(", ", Cluster.State.Members.Select(m => m.Address))}");
    }

    private CommandReply Down(string address)
    {
        Member m = FindMember(address);
        Cluster.Down(m.Address);
        return new CommandReply(true, $"{m.Address} marked down");
    }

    private CommandReply DownUnreachable()
    {
        var unreachable = Cluster.State.Unreachable.ToList();
        foreach (Member m in unreachable) Cluster.Down(m.Address);
        return new CommandReply(true, unreachable.Count == 0 ? "no unreachable members" : $"marked down: {string.Join(", ", unreachable.Select(m => m.Address))}");
    }

    private CommandReply Join(string address)
    {
        Address target = Address.Parse(address);
        Cluster.Join(target);
        return new CommandReply(true, $"{Cluster.SelfAddress} joins {target}");
    }

    private async Task<CommandReply> Command(IRunCommand command, Func<RunState, string> ok)
    {
        object answer = await _coordinator.Ask(command, AskTimeout);
        return answer switch
        {
            RunStateReply s => new CommandReply(true, ok(s.State)),
            PausePointCancelled c => new CommandReply(true, $"run {_runId}: the pause at {c.At} committed steps is cancelled; it goes on (now {c.State.CommittedSteps})"),
            CommandRejected no => new CommandReply(false, no.Reason),
            _ => new CommandReply(false, $"unexpected answer {answer.GetType().Name}"),
        };
    }

    private Task<CommandReply> Start(string runConfig)
    {
        if (!Path.IsPathFullyQualified(runConfig)) throw new ArgumentException($"run start: give the run config's absolute path as this coordinator host sees it (found \"{runConfig}\")");
        KtoConfig config = KtoConfigReader.Load(runConfig);
        RunSpec spec = RunSpec.FromConfig(_runId, config, NullObserver.Instance);
        Directory.CreateDirectory(config.OutputDir);
        Kto.Domain.Checkpoints.AtomicFile.WriteText(Path.Combine(config.OutputDir, TrainingLoop.RunConfigFile), KtoConfigReader.ToJson(config));
        return Command(new StartRun(spec), s => $"run {_runId} started: {spec.ExampleCount} examples, {spec.TotalSteps} steps of {spec.GlobalBatchSize} × {spec.Accumulation} examples");
    }

    private Task<CommandReply> PauseAt(string[] args)
    {
        if (args.Length != 2 || args[0] != "--at" || !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int at))
            throw new ArgumentException($"run pause: expected nothing or --at STEPS (a committed-step count), found \"{string.Join(' ', args)}\"");
        return Command(new PauseRun(at), s => $"run {_runId} will pause once {at} steps are committed (now {s.CommittedSteps}, {s.Phase.ToString().ToLowerInvariant()})");
    }

    private async Task<CommandReply> RunStatus()
    {
        var status = (ClusterStatus)await _coordinator.Ask(new GetClusterStatus(), AskTimeout);
        RunState s = status.State;
        var sb = new StringBuilder();
        foreach (string warning in status.Warnings ?? []) sb.AppendLine($"WARNING: {warning}");
        if (s.Spec is not { } spec)
        {
            sb.Append(CultureInfo.InvariantCulture, $"run {_runId}: not started (incarnation {s.Incarnation}); `run start RUN_CONFIG` starts it");
            return new CommandReply(true, sb.ToString());
        }
        sb.AppendLine(CultureInfo.InvariantCulture, $"run {spec.RunId}: {s.Phase.ToString().ToLowerInvariant()}, {s.CommittedSteps}/{spec.TotalSteps} steps committed, coordinator incarnation {s.Incarnation}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"plan: {spec.ExampleCount} examples, global batch {spec.GlobalBatchSize} × {spec.Accumulation}, {spec.Plan().StepsPerEpoch} steps per epoch");
        sb.AppendLine(s.LatestCheckpoint is { } c ? $"latest checkpoint: step {c.Step} at {c.Path}" : "latest checkpoint: none");
        sb.AppendLine(status.RoundStep is { } step
            ? $"in flight: step {step + 1}, generation {status.RoundGeneration}, members {string.Join(",", status.RoundMembers)}"
            : "in flight: nothing");
        if (status.PauseAt is { } pauseAt) sb.AppendLine(CultureInfo.InvariantCulture, $"pause at: {pauseAt} committed steps (run pause --at)");
        sb.Append(CultureInfo.InvariantCulture, $"trainers: {status.Trainers.Count} registered, {status.Trainers.Count(t => t.Reachable && !t.Leaving && t.HeldStep >= 0)} usable");
        if (spec.UsesScorerPool)
        {
            var scoring = (ScoringStatus)await _coordinator.Ask(new GetScoringStatus(), AskTimeout);
            sb.AppendLine();
            sb.Append(CultureInfo.InvariantCulture, $"reference scores: {scoring.StoredUnits}/{scoring.NeededUnits} units stored; scorers: {(scoring.Scorers.Count == 0 ? "none" : string.Join(",", scoring.Scorers.Select(x => x.ScorerId)))}");
        }
        return new CommandReply(true, sb.ToString());
    }

    private async Task<CommandReply> Tail(long after)
    {
        var lines = (RecentLines)await _coordinator.Ask(new GetRecentLines(after), AskTimeout);
        long cursor = lines.Lines.Count == 0 ? after : lines.Lines[^1].Seq;
        return new CommandReply(true, string.Join("\n", lines.Lines.Select(l => l.Line)), cursor);
    }

    private async Task<CommandReply> NodeList()
    {
        var status = (ClusterStatus)await _coordinator.Ask(new GetClusterStatus(), AskTimeout);
        var rows = new List<string[]> { new[] { "node", "role", "address", "held step", "reachable", "state" } };
        rows.AddRange(status.Trainers.Select(t => new[]
        {
            t.TrainerId, "trainer", t.Address, t.HeldStep < 0 ? "-" : t.HeldStep.ToString(CultureInfo.InvariantCulture), t.Reachable ? "true" : "false",
            t.Leaving ? "leaving" : t.CatchingUp ? "catching up" : t.HeldStep < 0 ? "loading" : status.RoundMembers.Contains(t.TrainerId) ? "in step" : "ready",
        }));
        if (status.State.Spec is { UsesScorerPool: true })
        {
            var scoring = (ScoringStatus)await _coordinator.Ask(new GetScoringStatus(), AskTimeout);
            rows.AddRange(scoring.Scorers.Select(x => new[] { x.ScorerId, "scorer", x.Address, "-", "true", x.UnitsInFlight > 0 ? $"scoring ({x.UnitsInFlight} units)" : "idle" }));
        }
        return new CommandReply(true, rows.Count == 1 ? "no trainer or scorer is registered" : Table(rows));
    }

    private Task<CommandReply> Drain(string id) =>
        Command(new DrainTrainer(id), _ => $"trainer {id} is draining: it finishes a step it is part of, is let go, and stops");
}
