using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Kto.Cluster.Core.Downing;

/// <summary>
/// The cluster's downing provider (<c>akka.cluster.downing-provider-class</c>): runs a
/// <see cref="CoordinatorDowningActor"/> on every node, which applies <see cref="DowningPolicy"/>. Akka creates it by
/// reflection with the (system, cluster) constructor.
/// </summary>
public sealed class CoordinatorDowningProvider : IDowningProvider
{
    /// <summary>The HOCON value of <c>akka.cluster.downing-provider-class</c>.</summary>
    public static string TypeName => typeof(CoordinatorDowningProvider).AssemblyQualifiedName!.Split(", Version", 2)[0];

    /// <summary>Creates the provider (called by Akka.Cluster).</summary>
    public CoordinatorDowningProvider(ActorSystem system, Akka.Cluster.Cluster cluster)
    {
        _ = system;
        DowningActorProps = Props.Create(() => new CoordinatorDowningActor(cluster));
    }

    /// <summary>
    /// A singleton whose host was downed starts elsewhere only after this margin: the side that lost it has as long
    /// (<see cref="DowningPolicy.DownAfter"/>) to down itself first.
    /// </summary>
    public TimeSpan DownRemovalMargin => DowningPolicy.DownAfter;

    /// <inheritdoc />
    public Props DowningActorProps { get; }
}

/// <summary>Every <see cref="TickInterval"/>: reads the cluster's members, reachability and this node's failure detector, and downs whom <see cref="DowningPolicy"/> says.</summary>
public sealed class CoordinatorDowningActor : ReceiveActor, IWithTimers
{
    /// <summary>How often the policy runs (the failure detector's heartbeat interval).</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(500);

    private readonly Akka.Cluster.Cluster _cluster;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<string> _downed = new(StringComparer.Ordinal);
    private DowningState _state = DowningState.Empty;

    /// <summary>Creates the actor for <paramref name="cluster"/>.</summary>
    public CoordinatorDowningActor(Akka.Cluster.Cluster cluster)
    {
        _cluster = cluster;
        Receive<Tick>(_ => OnTick());
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <inheritdoc />
    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TickInterval);

    private void OnTick()
    {
        (_state, IReadOnlyList<DowningDecision> decisions) = DowningPolicy.Decide(_state, View(), DateTime.UtcNow);
        foreach (DowningDecision d in decisions)
        {
            if (!_downed.Add(d.Address)) continue;
            string why = d.Reason switch
            {
                DowningReason.Unreachable => $"unreachable for {d.For.TotalSeconds:0.0} s",
                DowningReason.CoordinatorMinority => $"this coordinator host is on the minority side of the coordinator hosts (one unreachable for {d.For.TotalSeconds:0.0} s); it joins again",
                _ => $"no coordinator host reachable for {d.For.TotalSeconds:0.0} s; this node joins again",
            };
            _log.Warning("downing {0}: {1}", d.Address, why);
            _cluster.Down(Address.Parse(d.Address));
        }
    }

    private DowningView View()
    {
        var gossipUnreachable = _cluster.State.Unreachable.Select(m => m.Address).ToHashSet();
        var members = _cluster.State.Members
            .Where(m => m.Status is not (MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed) || m.Address.Equals(_cluster.SelfAddress))
            .OrderBy(m => m.Address, Member.AddressOrdering).ToList();
        DowningMember ToView(Member m, int rank)
        {
            bool coordinator = m.HasRole(ClusterRoles.Coordinator);
            bool reachable = _cluster.FailureDetector.IsMonitoring(m.Address)
                ? _cluster.FailureDetector.IsAvailable(m.Address)
                : !gossipUnreachable.Contains(m.Address);
            return new DowningMember(m.Address.ToString(), coordinator, reachable, rank);
        }
        var all = members.Select(ToView).ToList();
        string self = _cluster.SelfAddress.ToString();
        DowningMember me = all.FirstOrDefault(m => m.Address == self)
            ?? new DowningMember(self, _cluster.SelfRoles.Contains(ClusterRoles.Coordinator), true, int.MaxValue);
        bool up = _cluster.SelfMember.Status is MemberStatus.Up or MemberStatus.WeaklyUp;
        return new DowningView(me, up, [.. all.Where(m => m.Address != self)]);
    }

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }
}
