using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Remote.Transport;
using Kto.Cluster.Core.Logging;

namespace Kto.Cluster.Core.Remoting;

/// <summary>
/// Puts <see cref="InboundAdmissionTransport"/> between Akka.Remote's TCP transport and its protocol layer (an Akka
/// "transport adapter": <c>akka.remote.dot-netty.tcp.applied-adapters</c>). Settings, in the host's HOCON:
/// <c>kto.remote.inbound-admission { burst = 64, per-second = 16 }</c> (defaults).
/// </summary>
public sealed class InboundAdmissionProvider : ITransportAdapterProvider
{
    /// <summary>The adapter's name in <c>akka.remote.adapters</c>.</summary>
    public const string Name = "kto-inbound-admission";

    /// <summary>The HOCON that applies the adapter to Akka.Remote's TCP transport.</summary>
    public static string Hocon => $$"""
        akka.remote.adapters.{{Name}} = "{{typeof(InboundAdmissionProvider).FullName}},{{typeof(InboundAdmissionProvider).Assembly.GetName().Name}}" # no space: Akka reads the value back quoted when it has one
        akka.remote.dot-netty.tcp.applied-adapters = [{{Name}}]
        """;

    /// <inheritdoc/>
    public Akka.Remote.Transport.Transport Create(Akka.Remote.Transport.Transport wrappedTransport, ExtendedActorSystem system)
    {
        var config = system.Settings.Config;
        return new InboundAdmissionTransport(wrappedTransport, system, new ConnectionBudget(
            config.GetInt("kto.remote.inbound-admission.burst", 64), config.GetDouble("kto.remote.inbound-admission.per-second", 16)));
    }
}

/// <summary>
/// Akka.Remote's TCP transport with a per-host budget of new inbound connections (<see cref="ConnectionBudget"/>).
/// Per inbound connection Akka.Remote 1.5 builds a protocol actor (its props from an expression tree) and loads a
/// failure detector by type name before it reads a byte: about 0.6 ms of CPU, so a client opening a thousand
/// connections a second costs a coordinator more than half a core. A connection over the budget is closed here, as
/// soon as the transport reports it and before anything is read from it; one warning per source host and 10 s says
/// how many were refused. Outbound connections and admitted ones pass through untouched (same scheme, same
/// addresses).
/// </summary>
public sealed class InboundAdmissionTransport : Akka.Remote.Transport.Transport
{
    private readonly Akka.Remote.Transport.Transport _wrapped;
    private readonly ConnectionBudget _budget;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly RepeatedLines _refusals;
    private readonly ILoggingAdapter _log;

    /// <param name="wrapped">Akka.Remote's transport (DotNetty TCP).</param>
    /// <param name="system">The actor system; its log gets the refusals.</param>
    /// <param name="budget">Who may open how many connections.</param>
    public InboundAdmissionTransport(Akka.Remote.Transport.Transport wrapped, ActorSystem system, ConnectionBudget budget)
    {
        _wrapped = wrapped;
        _budget = budget;
        System = system;
        Config = wrapped.Config;
        _log = Akka.Event.Logging.GetLogger(system, typeof(InboundAdmissionTransport));
        ILoggingAdapter log = _log;
        _refusals = new RepeatedLines(TimeSpan.FromSeconds(10), line => log.Warning("{0}", line));
    }

    /// <summary>The wrapped transport's (<c>tcp</c>): the adapter adds nothing to addresses.</summary>
    public override string SchemeIdentifier => _wrapped.SchemeIdentifier;

    /// <inheritdoc/>
    public override long MaximumPayloadBytes => _wrapped.MaximumPayloadBytes;

    /// <summary>Connections refused so far.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    private long _refused;

    /// <inheritdoc/>
    public override async Task<(Address, TaskCompletionSource<IAssociationEventListener>)> Listen()
    {
        (Address address, TaskCompletionSource<IAssociationEventListener> downstream) = await _wrapped.Listen().ConfigureAwait(false);
        var upstream = new TaskCompletionSource<IAssociationEventListener>();
        downstream.TrySetResult(new Gate(upstream.Task, this));
        return (address, upstream);
    }

    /// <inheritdoc/>
    public override bool IsResponsibleFor(Address remote) => _wrapped.IsResponsibleFor(remote);

    /// <inheritdoc/>
    public override Task<AssociationHandle> Associate(Address remoteAddress) => _wrapped.Associate(remoteAddress);

    /// <inheritdoc/>
    public override Task<bool> ManagementCommand(object message) => _wrapped.ManagementCommand(message);

    /// <inheritdoc/>
    public override Task<bool> Shutdown()
    {
        _refusals.Dispose();
        return _wrapped.Shutdown();
    }

    private bool Admit(AssociationHandle handle)
    {
        string host = HostOf(handle.RemoteAddress);
        bool admitted;
        lock (_budget) admitted = _budget.TryAdmit(host, _clock.Elapsed);
        if (admitted) return true;
        handle.Disassociate("its host opened more new connections than its budget allows", _log);
        Interlocked.Increment(ref _refused);
        _refusals.Write(host, $"refused an inbound connection from {host}: it opened more than {_budget.Burst} at once or {_budget.PerSecond:0.#} a second after that (kto.remote.inbound-admission)");
        return false;
    }

    /// <summary>
    /// The source host as a budget key and for the log: an IPv4 peer of the dual-stack listener appears as
    /// <c>[::ffff:10.0.0.9]</c> and is counted (and named) as <c>10.0.0.9</c>, the same host either way.
    /// </summary>
    public static string HostOf(Address remote)
    {
        string host = (remote.Host ?? "").Trim('[', ']');
        return global::System.Net.IPAddress.TryParse(host, out global::System.Net.IPAddress? ip) ? (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString() : host;
    }

    /// <summary>Lets admitted connections through to Akka.Remote's protocol layer once it listens.</summary>
    private sealed class Gate(Task<IAssociationEventListener> upstream, InboundAdmissionTransport owner) : IAssociationEventListener
    {
        public void Notify(IAssociationEvent ev)
        {
            if (ev is InboundAssociation inbound && !owner.Admit(inbound.Association)) return;
            if (upstream.IsCompletedSuccessfully) upstream.Result.Notify(ev);
            else upstream.ContinueWith(t => t.Result.Notify(ev), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
