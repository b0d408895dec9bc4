using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Kto.Cluster.Core.Security;

/// <summary>
/// What one holder needs to speak TLS with mutual authentication inside a cluster: its own certificate (with the
/// private key) and the cluster's CA, which alone decides whom to trust (<see cref="ClusterCertificates.Verify"/>).
/// A host uses it on Akka.Remote and on the gradient ring; the <c>kto HOST:PORT</c> tool uses an operator's.
/// </summary>
public sealed class ClusterTls : IDisposable
{
    private ClusterTls(X509Certificate2 certificate, X509Certificate2 authority, CertificateHolder holder)
    {
        Certificate = certificate;
        Authority = authority;
        Holder = holder;
    }

    /// <summary>This holder's certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The cluster's CA certificate.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>What this holder's own certificate is for.</summary>
    public CertificateHolder Holder { get; }

    /// <summary>
    /// Loads <paramref name="certificatePath"/> (PKCS#12, as <c>kto certs</c> writes <c>NAME.pfx</c>) and the CA at
    /// <paramref name="authorityPath"/> (PEM), and checks the certificate against the CA now: a host with an expired
    /// certificate, or one of another CA, stops at start with the reason instead of being refused by every peer.
    /// </summary>
    /// <param name="certificatePath">The holder's PKCS#12 file.</param>
    /// <param name="password">Its password (null when it has none).</param>
    /// <param name="authorityPath">The cluster's <c>ca.crt</c>.</param>
    /// <param name="accepted">The holder kinds this certificate may be (a host's config wants a host certificate).</param>
    /// <exception cref="InvalidDataException">A file is missing or unreadable, the certificate has no private key, or the CA refuses it (the message says which and why).</exception>
    public static ClusterTls Load(string certificatePath, string? password, string authorityPath, params CertificateHolder[] accepted)
    {
        if (!File.Exists(certificatePath)) throw new InvalidDataException($"{certificatePath}: certificate not found (make one with kto certs host or kto certs operator)");
        if (!File.Exists(authorityPath)) throw new InvalidDataException($"{authorityPath}: the cluster's CA certificate not found (kto certs ca makes it)");
        X509Certificate2 certificate, authority;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new InvalidDataException($"{certificatePath}: not a readable PKCS#12 file{(password is null ? " without a password" : " with the password given")}: {e.Message}", e);
        }
        try
        {
            authority = X509Certificate2.CreateFromPem(File.ReadAllText(authorityPath));
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            certificate.Dispose();
            throw new InvalidDataException($"{authorityPath}: not a PEM certificate: {e.Message}", e);
        }
        string? problem = !certificate.HasPrivateKey ? $"{certificatePath}: holds no private key (use the .pfx kto certs wrote, not the .crt)" : null;
        CertificateVerdict verdict = ClusterCertificates.Verify(certificate, authority, DateTimeOffset.UtcNow, accepted);
        problem ??= verdict.Ok ? null : $"{certificatePath}: {verdict.Reason}";
        if (problem is not null)
        {
            certificate.Dispose();
            authority.Dispose();
            throw new InvalidDataException(problem);
        }
        return new ClusterTls(certificate, authority, verdict.Holder!.Value);
    }

    /// <summary>Checks a peer's certificate against this cluster's CA, now.</summary>
    public CertificateVerdict Verify(X509Certificate? peer, params CertificateHolder[] accepted)
    {
        if (peer is null) return ClusterCertificates.Verify(null, Authority, DateTimeOffset.UtcNow, accepted);
        using var copy = X509CertificateLoader.LoadCertificate(peer.GetRawCertData());
        return ClusterCertificates.Verify(copy, Authority, DateTimeOffset.UtcNow, accepted);
    }

    /// <summary>The protocols allowed: TLS 1.3, and 1.2 where an OpenSSL build lacks 1.3.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// Server-side options for an <see cref="SslStream"/> that demands a client certificate of one of
    /// <paramref name="accepted"/>; a refusal is passed to <paramref name="refused"/> with the reason before the handshake fails.
    /// </summary>
    public SslServerAuthenticationOptions ServerOptions(Action<string> refused, params CertificateHolder[] accepted) => new()
    {
        ServerCertificate = Certificate,
        ClientCertificateRequired = true,
        EnabledSslProtocols = Protocols,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, cert, _, _) => Check(cert, refused, accepted),
    };

    /// <summary>
    /// Client-side options: presents this holder's certificate and accepts a server certificate of one of
    /// <paramref name="accepted"/> (the CA decides; host names are not compared, see docs/cluster.md).
    /// </summary>
    public SslClientAuthenticationOptions ClientOptions(Action<string> refused, params CertificateHolder[] accepted) => new()
    {
        TargetHost = "kto",
        ClientCertificates = [Certificate],
        EnabledSslProtocols = Protocols,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, cert, _, _) => Check(cert, refused, accepted),
        LocalCertificateSelectionCallback = (_, _, _, _, _) => Certificate,
    };

    private bool Check(X509Certificate? peer, Action<string> refused, CertificateHolder[] accepted)
    {
        CertificateVerdict verdict = Verify(peer, accepted);
        if (!verdict.Ok) refused(verdict.Reason);
        return verdict.Ok;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}
