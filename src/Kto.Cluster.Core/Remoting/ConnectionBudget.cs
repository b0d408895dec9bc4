namespace Kto.Cluster.Core.Remoting;

/// <summary>
/// A token bucket per source host for new inbound connections: each host may open <see cref="Burst"/> at once and
/// <see cref="PerSecond"/> a second after that. A cluster's peers keep their connections for the whole run (one
/// Akka.Remote association per pair of processes, a new one after a failure), so they stay far inside it; a client
/// opening connections in a loop runs it dry within a fraction of a second and is refused from then on, before the
/// transport spends anything on the connection but the accept. Not thread-safe: the caller serializes.
/// </summary>
/// <param name="burst">Connections a host may open at once; at least 1.</param>
/// <param name="perSecond">Connections per second a host earns back, up to <paramref name="burst"/>; positive.</param>
/// <param name="maxHosts">Hosts tracked at most; past it, hosts whose bucket has refilled are forgotten (they would
/// start full anyway), and a new host beyond that is refused, so a flood from many addresses cannot grow the table
/// without bound.</param>
public sealed class ConnectionBudget(int burst, double perSecond, int maxHosts = 65_536)
{
    private readonly Dictionary<string, (double Tokens, TimeSpan At)> _hosts = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Connections a host may open at once.</summary>
    public int Burst { get; } = burst >= 1 ? burst : throw new ArgumentOutOfRangeException(nameof(burst), burst, "the burst must be at least 1");

    /// <summary>Connections per second a host earns back.</summary>
    public double PerSecond { get; } = perSecond > 0 && double.IsFinite(perSecond) ? perSecond : throw new ArgumentOutOfRangeException(nameof(perSecond), perSecond, "the rate must be positive");

    /// <summary>Hosts tracked now.</summary>
    public int TrackedHosts => _hosts.Count;

    /// <summary>Whether a new connection from <paramref name="host"/> at <paramref name="now"/> (a monotonic clock) is let in; takes a token if so.</summary>
    public bool TryAdmit(string host, TimeSpan now)
    {
        if (!_hosts.TryGetValue(host, out var bucket))
        {
            if (_hosts.Count >= maxHosts) Forget(now);
            if (_hosts.Count >= maxHosts) return false;
            bucket = (Burst, now);
        }
        double tokens = Math.Min(Burst, bucket.Tokens + Math.Max(0, (now - bucket.At).TotalSeconds) * PerSecond);
        bool admitted = tokens >= 1;
        _hosts[host] = (admitted ? tokens - 1 : tokens, now);
        return admitted;
    }

    private void Forget(TimeSpan now)
    {
        foreach ((string host, var b) in _hosts.ToList())
            if (b.Tokens + (now - b.At).TotalSeconds * PerSecond >= Burst) _hosts.Remove(host);
    }
}
