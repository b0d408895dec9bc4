using Akka.Event;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Akka.Remote.Transport.DotNetty;

namespace Kto.Cluster.Core.Security;

/// <summary>Akka.Remote with or without the cluster's TLS (host config <c>"tls"</c>).</summary>
public static class AkkaTls
{
    /// <summary>
    /// Akka.Remote (DotNetty TCP) on <paramref name="hostname"/>:<paramref name="port"/>; with <paramref name="tls"/>,
    /// TLS with mutual authentication: each side presents its certificate and the other accepts it only when the
    /// cluster's CA issued it, it is valid now, and it is a host certificate (or, on an inbound connection, an
    /// operator's: the <c>kto HOST:PORT</c> tool). Akka's own chain and host-name checks are replaced by
    /// <see cref="ClusterTls.Verify"/> (DotNettySslSetup's custom validator): the system trust store plays no part, and
    /// host names are not compared, as addresses behind NAT or on several interfaces differ from the certificate's.
    /// A refused peer is logged as a warning on this side with the reason; the peer sees its handshake fail.
    /// </summary>
    public static AkkaConfigurationBuilder WithClusterRemoting(this AkkaConfigurationBuilder akka, string hostname, int port, ClusterTls? tls,
        params CertificateHolder[] accepted)
    {
        if (tls is null) return akka.WithRemoting(hostname, port);
        CertificateHolder[] kinds = accepted.Length > 0 ? accepted : [CertificateHolder.Host];
        return akka.WithRemoting(new RemoteOptions
        {
            HostName = hostname,
            Port = port,
            EnableSsl = true,
            Ssl = new SslOptions
            {
                X509Certificate = tls.Certificate,
                SuppressValidation = false,
                RequireMutualAuthentication = true,
                ValidateCertificateHostname = false,
                CustomValidator = Validator(tls, kinds),
            },
        });
    }

    /// <summary>The validator DotNetty calls on both ends of every Akka.Remote connection.</summary>
    public static CertificateValidationCallback Validator(ClusterTls tls, CertificateHolder[] accepted) => (certificate, _, peer, _, log) =>
    {
        CertificateVerdict verdict = tls.Verify(certificate, accepted);
        // The reason is part of the template: the transport's repeated lines are written once per kind and window
        // (EdgeQuietLogger), and each distinct reason is its own kind.
        if (!verdict.Ok) log?.Warning($"TLS: refused the connection with {{0}}: {Escape(verdict.Reason)}", string.IsNullOrEmpty(peer) ? "a peer" : peer);
        return verdict.Ok;
    };

    private static string Escape(string text) => text.Replace("{", "{{", StringComparison.Ordinal).Replace("}", "}}", StringComparison.Ordinal);
}
