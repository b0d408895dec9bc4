using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Kto.Domain.Cluster;

namespace Kto.Cluster.Core.Security;

/// <summary>
/// Operators' commands on a cluster with TLS: the <c>kto HOST:PORT</c> tool signs each <see cref="CommandRequest"/>
/// with its operator certificate's key; the coordinator host checks the certificate against the cluster's CA, the
/// signature and its age, and the role (<c>kto-operator-read</c>: the read-only commands of
/// <see cref="CommandPalettes.ReadOnly"/>; <c>kto-operator-admin</c>: every command).
/// </summary>
public static class OperatorAuth
{
    /// <summary>How old (or how far ahead, for clocks that differ) a signed request may be.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromMinutes(2);

    /// <summary>Signs <paramref name="request"/> with <paramref name="operatorTls"/>'s certificate and key, at <paramref name="now"/>.</summary>
    /// <exception cref="InvalidOperationException">The certificate's key is not an ECDSA key (kto certs makes P-256 keys).</exception>
    public static CommandRequest Sign(CommandRequest request, ClusterTls operatorTls, DateTimeOffset now)
    {
        using ECDsa key = operatorTls.Certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException($"\"{operatorTls.Certificate.Subject}\" has no ECDSA private key");
        CommandRequest stamped = request with { Certificate = operatorTls.Certificate.RawData, SignedAtUnixMs = now.ToUnixTimeMilliseconds(), Signature = null };
        return stamped with { Signature = key.SignData(stamped.SignedBytes(), HashAlgorithmName.SHA256) };
    }

    /// <summary>
    /// Whether the host may carry out <paramref name="request"/>: null when it may, else the reason it is refused
    /// (no certificate, one the CA did not issue or that expired, a signature that does not match, a request older
    /// than <see cref="MaxAge"/>, or a read-only operator asking for a change).
    /// </summary>
    public static string? Refusal(CommandRequest request, ClusterTls hostTls, DateTimeOffset now)
    {
        string command = $"{request.Palette} {request.Verb}";
        if (request.Certificate is null || request.Signature is null)
            return $"{command} refused: this cluster uses TLS and takes commands from operators with a certificate of its CA (kto HOST:PORT --cert OPERATOR.pfx --ca ca.crt …)";
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(request.Certificate);
        }
        catch (CryptographicException)
        {
            return $"{command} refused: the request's certificate is not a certificate";
        }
        using (certificate)
        {
            CertificateVerdict verdict = hostTls.Verify(certificate, CertificateHolder.OperatorRead, CertificateHolder.OperatorAdmin);
            if (!verdict.Ok) return $"{command} refused: {verdict.Reason}";
            using ECDsa? key = certificate.GetECDsaPublicKey();
            if (key is null || !key.VerifyData(request.SignedBytes(), request.Signature, HashAlgorithmName.SHA256))
                return $"{command} refused: the signature does not match the request and \"{certificate.Subject}\"";
            TimeSpan age = now - DateTimeOffset.FromUnixTimeMilliseconds(request.SignedAtUnixMs);
            if (age.Duration() > MaxAge)
                return $"{command} refused: signed {age.TotalSeconds:0} s {(age < TimeSpan.Zero ? "ahead of" : "before")} this host's clock (at most {MaxAge.TotalSeconds:0} s either way; are the clocks in sync?)";
            if (verdict.Holder == CertificateHolder.OperatorRead && !CommandPalettes.IsReadOnly(request.Palette, request.Verb))
                return $"{command} refused: \"{certificate.GetNameInfo(X509NameType.SimpleName, false)}\" holds a read-only operator certificate ({ClusterCertificates.UnitOf(CertificateHolder.OperatorRead)}); {command} needs {ClusterCertificates.UnitOf(CertificateHolder.OperatorAdmin)}";
            return null;
        }
    }
}
