using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Kto.Cluster.Core.Security;

/// <summary>What a certificate issued by the cluster's CA is for.</summary>
public enum CertificateHolder
{
    /// <summary>A cluster host (coordinator, trainer, scorer): TLS server and client (Akka.Remote, the gradient ring, state transfer).</summary>
    Host,

    /// <summary>An operator of the <c>kto HOST:PORT …</c> tool allowed the read-only commands.</summary>
    OperatorRead,

    /// <summary>An operator allowed every command, mutating ones included.</summary>
    OperatorAdmin,
}

/// <summary>The outcome of checking a peer's certificate against the cluster's CA.</summary>
/// <param name="Ok">Whether the certificate is accepted.</param>
/// <param name="Reason">Why not (empty when accepted): what failed, in words for both sides' logs.</param>
/// <param name="Holder">What the certificate is for, when accepted.</param>
public sealed record CertificateVerdict(bool Ok, string Reason, CertificateHolder? Holder = null);

/// <summary>
/// A small cluster's own certificate authority and the certificates it issues (<c>kto certs</c>), made with
/// System.Security.Cryptography only. Keys are ECDSA P-256; certificates are X.509 v3 with the extensions TLS expects
/// (basic constraints, key usage, extended key usage: TLS server + client for hosts, client only for operators, subject
/// alternative names for hosts). What a certificate is for is written in its subject's OU (<c>kto-host</c>,
/// <c>kto-operator-read</c>, <c>kto-operator-admin</c>), so a holder cannot change it without the CA's key.
/// </summary>
/// <remarks>
/// Files: the CA is <c>ca.crt</c> (PEM, to give to every host) and <c>ca.key</c> (PEM PKCS#8, stays with whoever issues
/// certificates); each holder NAME gets <c>NAME.crt</c>, <c>NAME.key</c> and <c>NAME.pfx</c> (PKCS#12 with the key,
/// the form Akka.Remote's <c>ssl.certificate.path</c> reads). Key files are created readable and writable by their
/// owner only (mode 0600) before any byte is written; an existing file is never overwritten.
/// </remarks>
public static class ClusterCertificates
{
    /// <summary>The CA's certificate file name.</summary>
    public const string CaCertificateFile = "ca.crt";

    /// <summary>The CA's private key file name.</summary>
    public const string CaKeyFile = "ca.key";

    /// <summary>The OU of each holder kind.</summary>
    public static string UnitOf(CertificateHolder holder) => holder switch
    {
        CertificateHolder.Host => "kto-host",
        CertificateHolder.OperatorRead => "kto-operator-read",
        CertificateHolder.OperatorAdmin => "kto-operator-admin",
        _ => throw new ArgumentOutOfRangeException(nameof(holder)),
    };

    private const string ServerAuth = "1.3.6.1.5.5.7.3.1", ClientAuth = "1.3.6.1.5.5.7.3.2";

    /// <summary>Creates the CA <paramref name="name"/> in <paramref name="dir"/> (created if missing), valid from now for <paramref name="validity"/>.</summary>
    /// <returns>The CA's certificate (with its key).</returns>
    /// <exception cref="IOException"><c>ca.crt</c> or <c>ca.key</c> exists already (a second CA would orphan every certificate of the first).</exception>
    public static X509Certificate2 CreateAuthority(string dir, string name, TimeSpan validity)
    {
        Directory.CreateDirectory(dir);
        string certPath = Path.Combine(dir, CaCertificateFile), keyPath = Path.Combine(dir, CaKeyFile);
        foreach (string p in new[] { certPath, keyPath })
            if (File.Exists(p)) throw new IOException($"{p} exists already: a new CA would make every certificate the old one issued useless (remove it first if that is what you want)");
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}, OU=kto-ca"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        X509Certificate2 ca = request.CreateSelfSigned(now.AddMinutes(-5), now + validity);
        WritePrivate(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certPath, ca.ExportCertificatePem() + "\n");
        return ca;
    }

    /// <summary>The CA in <paramref name="dir"/>, with its key when <paramref name="withKey"/>.</summary>
    /// <exception cref="FileNotFoundException">A file of the CA is missing (names it and the command that makes it).</exception>
    public static X509Certificate2 LoadAuthority(string dir, bool withKey)
    {
        string certPath = Path.Combine(dir, CaCertificateFile), keyPath = Path.Combine(dir, CaKeyFile);
        if (!File.Exists(certPath)) throw new FileNotFoundException($"{certPath} not found: make the cluster's CA first with `kto certs ca --dir {dir}`", certPath);
        if (!withKey) return X509Certificate2.CreateFromPem(File.ReadAllText(certPath));
        if (!File.Exists(keyPath)) throw new FileNotFoundException($"{keyPath} not found: certificates are issued where the CA's key is (`kto certs ca` wrote it next to {CaCertificateFile})", keyPath);
        return X509Certificate2.CreateFromPemFile(certPath, keyPath);
    }

    /// <summary>
    /// Issues a certificate for <paramref name="name"/> signed by <paramref name="ca"/>, valid from <paramref name="notBefore"/>
    /// to <paramref name="notAfter"/>, and writes <c>NAME.crt</c>, <c>NAME.key</c> and <c>NAME.pfx</c> into <paramref name="dir"/>.
    /// </summary>
    /// <param name="ca">The issuing CA, with its private key (<see cref="LoadAuthority"/>).</param>
    /// <param name="dir">Where the files are written.</param>
    /// <param name="name">The holder's name: the subject's CN and the files' base name.</param>
    /// <param name="holder">What the certificate is for (its OU, its extended key usages).</param>
    /// <param name="notBefore">Start of validity.</param>
    /// <param name="notAfter">End of validity (cut to the CA's own end).</param>
    /// <param name="dns">DNS names of a host (subject alternative names; the name itself is always one).</param>
    /// <param name="ips">IP addresses of a host (subject alternative names).</param>
    /// <param name="pfxPassword">The PKCS#12 file's password (null: none; the file is then protected by its mode only).</param>
    /// <exception cref="IOException">A file of that name exists already.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not usable as a file name, or the validity is empty.</exception>
    public static X509Certificate2 Issue(X509Certificate2 ca, string dir, string name, CertificateHolder holder, IEnumerable<string> dns, IEnumerable<IPAddress> ips,
        DateTimeOffset notBefore, DateTimeOffset notAfter, string? pfxPassword = null)
    {
        if (name.Length == 0 || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || name.StartsWith('.'))
            throw new ArgumentException($"\"{name}\" cannot name the certificate's files: use letters, digits, '-', '_' or '.' (e.g. the host's name)");
        if (notAfter <= notBefore) throw new ArgumentException("the certificate's validity must end after it begins");
        if (ca.GetECDsaPrivateKey() is not { } caKey) throw new ArgumentException("the CA certificate has no private key: issue certificates where ca.key is");
        string[] paths = [.. new[] { ".crt", ".key", ".pfx" }.Select(ext => Path.Combine(dir, name + ext))];
        foreach (string p in paths)
            if (File.Exists(p)) throw new IOException($"{p} exists already: certificates are not replaced in place (remove the old files first)");

        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}, OU={UnitOf(holder)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        var usages = new OidCollection { new Oid(ClientAuth) };
        if (holder == CertificateHolder.Host) usages.Add(new Oid(ServerAuth));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        if (holder == CertificateHolder.Host)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (string d in new[] { name }.Concat(dns).Distinct(StringComparer.OrdinalIgnoreCase)) san.AddDnsName(d);
            foreach (IPAddress ip in ips.Distinct()) san.AddIpAddress(ip);
            request.CertificateExtensions.Add(san.Build());
        }
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));

        byte[] serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive serial number, as RFC 5280 asks
        if (notAfter > ca.NotAfter) notAfter = ca.NotAfter; // never outlives its issuer
        using X509Certificate2 issued = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), notBefore, notAfter, serial);
        X509Certificate2 withKey = issued.CopyWithPrivateKey(key);
        Directory.CreateDirectory(dir);
        WritePrivate(paths[1], key.ExportPkcs8PrivateKeyPem());
        WritePrivate(paths[2], withKey.Export(X509ContentType.Pkcs12, pfxPassword));
        File.WriteAllText(paths[0], withKey.ExportCertificatePem() + "\n");
        return withKey;
    }

    /// <summary>
    /// Whether <paramref name="peer"/> is a certificate of this cluster, valid at <paramref name="now"/>, for one of
    /// <paramref name="accepted"/>: its chain must end at <paramref name="ca"/> alone (the system's trust store plays no
    /// part), every certificate on it must be in its validity period, and its OU names its holder kind.
    /// </summary>
    public static CertificateVerdict Verify(X509Certificate2? peer, X509Certificate2 ca, DateTimeOffset now, params CertificateHolder[] accepted)
    {
        if (peer is null) return new(false, "no certificate was presented");
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // a small cluster's CA publishes no revocation list
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        bool built = chain.Build(peer);
        string subject = peer.Subject;
        if (!built)
        {
            var problems = chain.ChainStatus.Select(s => s.Status).Distinct().ToList();
            string why = problems.Contains(X509ChainStatusFlags.NotTimeValid)
                ? $"expired or not yet valid (valid {peer.NotBefore.ToUniversalTime():yyyy-MM-dd HH:mm} to {peer.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC)"
                : problems.Contains(X509ChainStatusFlags.UntrustedRoot) || problems.Contains(X509ChainStatusFlags.PartialChain)
                    ? $"not issued by this cluster's CA ({ca.Subject}; it names {peer.Issuer})"
                    : string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
            return new(false, $"certificate \"{subject}\" refused: {why}");
        }
        if (chain.ChainElements[^1].Certificate.Thumbprint != ca.Thumbprint)
            return new(false, $"certificate \"{subject}\" refused: not issued by this cluster's CA ({ca.Subject})");
        CertificateHolder? holder = Enum.GetValues<CertificateHolder>().Cast<CertificateHolder?>()
            .FirstOrDefault(h => peer.SubjectName.EnumerateRelativeDistinguishedNames().Any(rdn => rdn.GetSingleElementType().Value == "2.5.4.11" && rdn.GetSingleElementValue() == UnitOf(h!.Value)));
        if (holder is not { } h)
            return new(false, $"certificate \"{subject}\" refused: it is not a kto host or operator certificate (no OU kto-host, kto-operator-read or kto-operator-admin)");
        if (!accepted.Contains(h))
            return new(false, $"certificate \"{subject}\" refused: a {UnitOf(h)} certificate, here {string.Join(" or ", accepted.Select(UnitOf))} is needed");
        return new(true, "", h);
    }

    /// <summary>Writes <paramref name="text"/> to a new file readable and writable by its owner only (mode 0600 from creation).</summary>
    private static void WritePrivate(string path, string text) => WritePrivate(path, System.Text.Encoding.ASCII.GetBytes(text + "\n"));

    private static void WritePrivate(string path, byte[] bytes)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var file = new FileStream(path, options);
        file.Write(bytes);
        file.Flush(flushToDisk: true);
    }

    private static string Escape(string value) => value.IndexOfAny([',', '=', '+', '<', '>', '#', ';', '"', '\\']) >= 0 ? $"\"{value.Replace("\"", "\\\"")}\"" : value;
}
