using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Kto.Cluster.Core.Security;

namespace Kto.Cluster.Cmd.Tests;

/// <summary><c>kto certs</c> through the built tool (real files), and the check every host will make of a peer's certificate.</summary>
public sealed class CertsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-certs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private KtoProcess.Result Kto(params string[] args) => KtoProcess.Run(_dir, args);

    private string In(string name) => Path.Combine(_dir, "ca", name);

    private static void AssertOwnerOnly(string path) =>
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, OperatingSystem.IsWindows() ? UnixFileMode.UserRead | UnixFileMode.UserWrite : File.GetUnixFileMode(path));

    private static string[] Usages(X509Certificate2 c) =>
        [.. c.Extensions.OfType<X509EnhancedKeyUsageExtension>().SelectMany(e => e.EnhancedKeyUsages.Cast<Oid>()).Select(o => o.Value!).Order(StringComparer.Ordinal)];

    [Fact]
    public void TheToolMakesACaAndHostAndOperatorCertificatesThatChainToIt()
    {
        string ca = Path.Combine(_dir, "ca");
        var made = Kto("certs", "ca", "--dir", ca, "--name", "lab cluster");
        Assert.True(made.ExitCode == 0, made.Stderr);
        Assert.Contains("CN=lab cluster", made.Stdout);
        AssertOwnerOnly(In("ca.key"));
        var again = Kto("certs", "ca", "--dir", ca);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("exists already", again.Stderr);

        var host = Kto("certs", "host", "box1", "--dir", ca, "--dns", "box1.lan", "--ip", "10.0.0.5", "--ip", "127.0.0.1");
        Assert.True(host.ExitCode == 0, host.Stderr);
        Assert.Contains("kto-host \"box1\" for box1, box1.lan, 10.0.0.5, 127.0.0.1", host.Stdout);
        foreach (string f in new[] { "box1.key", "box1.pfx" }) AssertOwnerOnly(In(f));
        using (X509Certificate2 pfx = X509CertificateLoader.LoadPkcs12FromFile(In("box1.pfx"), null))
        {
            Assert.True(pfx.HasPrivateKey);
            Assert.Equal(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], Usages(pfx)); // TLS server and client
            Assert.Contains("box1.lan", pfx.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
            Assert.Contains(IPAddress.Parse("10.0.0.5"), pfx.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses());
        }
        var hostCheck = Kto("certs", "check", In("box1.crt"), "--dir", ca);
        Assert.True(hostCheck.ExitCode == 0, hostCheck.Stderr);
        Assert.StartsWith("box1.crt: kto-host \"box1\", issued by CN=lab cluster, OU=kto-ca", hostCheck.Stdout);

        Assert.Equal(0, Kto("certs", "operator", "alice", "--dir", ca, "--role", "read").ExitCode);
        Assert.Equal(0, Kto("certs", "operator", "bob", "--dir", ca, "--role", "admin").ExitCode);
        using (X509Certificate2 alice = X509Certificate2.CreateFromPem(File.ReadAllText(In("alice.crt"))))
        {
            Assert.Equal(["1.3.6.1.5.5.7.3.2"], Usages(alice)); // TLS client only
            Assert.Empty(alice.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        }
        Assert.Contains("kto-operator-read \"alice\"", Kto("certs", "check", In("alice.crt"), "--dir", ca).Stdout);
        Assert.Contains("kto-operator-admin \"bob\"", Kto("certs", "check", In("bob.pfx"), "--dir", ca).Stdout);
        var twice = Kto("certs", "operator", "alice", "--dir", ca, "--role", "admin");
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains("alice.crt exists already", twice.Stderr);

        // A certificate of another cluster's CA is refused, and says so.
        string other = Path.Combine(_dir, "other");
        Assert.Equal(0, Kto("certs", "ca", "--dir", other).ExitCode);
        Assert.Equal(0, Kto("certs", "host", "box1", "--dir", other).ExitCode);
        var stranger = Kto("certs", "check", Path.Combine(other, "box1.crt"), "--dir", ca);
        Assert.Equal(1, stranger.ExitCode);
        Assert.Contains("certificate \"CN=box1, OU=kto-host\" refused: not issued by this cluster's CA (CN=lab cluster, OU=kto-ca", stranger.Stderr);
    }

    [Fact]
    public void BadInputIsRefusedWithTheReason()
    {
        string empty = Path.Combine(_dir, "empty");
        var noCa = Kto("certs", "host", "box1", "--dir", empty);
        Assert.Equal(1, noCa.ExitCode);
        Assert.Contains("ca.crt not found: make the cluster's CA first with `kto certs ca --dir", noCa.Stderr);
        string ca = Path.Combine(_dir, "ca");
        Assert.Equal(0, Kto("certs", "ca", "--dir", ca).ExitCode);
        Assert.Contains("--ip: \"10.0.0.300\" is not an IP address", Kto("certs", "host", "box1", "--dir", ca, "--ip", "10.0.0.300").Stderr);
        Assert.Contains("\"../box\" cannot name the certificate's files", Kto("certs", "host", "../box", "--dir", ca).Stderr);
        Assert.Contains("--days must be at least 1", Kto("certs", "operator", "carol", "--dir", ca, "--role", "read", "--days", "0").Stderr);
        Assert.NotEqual(0, Kto("certs", "operator", "carol", "--dir", ca, "--role", "root").ExitCode);
        Assert.Contains("the environment variable KTO_TEST_NO_SUCH_VARIABLE is not set", Kto("certs", "host", "box2", "--dir", ca, "--password-env", "KTO_TEST_NO_SUCH_VARIABLE").Stderr);
        Assert.False(File.Exists(In("box2.key"))); // nothing written by a refused command
    }

    [Fact]
    public void APfxWithAPasswordOpensOnlyWithIt()
    {
        string ca = Path.Combine(_dir, "ca");
        Assert.Equal(0, Kto("certs", "ca", "--dir", ca).ExitCode);
        string variable = $"KTO_TEST_PFX_{Guid.NewGuid():N}";
        Environment.SetEnvironmentVariable(variable, "s3cret-pw");
        try
        {
            var r = Kto("certs", "host", "box1", "--dir", ca, "--password-env", variable);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.DoesNotContain("s3cret-pw", r.Stdout + r.Stderr);
            Assert.ThrowsAny<CryptographicException>(() => X509CertificateLoader.LoadPkcs12FromFile(In("box1.pfx"), null));
            using X509Certificate2 opened = X509CertificateLoader.LoadPkcs12FromFile(In("box1.pfx"), "s3cret-pw");
            Assert.True(opened.HasPrivateKey);
            Assert.Equal(0, Kto("certs", "check", In("box1.pfx"), "--dir", ca, "--password-env", variable).ExitCode);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void VerifyRefusesExpiredMissingAndWrongKindsOfCertificates()
    {
        using X509Certificate2 ca = ClusterCertificates.CreateAuthority(Path.Combine(_dir, "ca"), "test CA", TimeSpan.FromDays(30));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 expired = ClusterCertificates.Issue(ca, Path.Combine(_dir, "ca"), "old", CertificateHolder.Host, [], [], now.AddDays(-10), now.AddDays(-1));
        using X509Certificate2 host = ClusterCertificates.Issue(ca, Path.Combine(_dir, "ca"), "box", CertificateHolder.Host, [], [IPAddress.Loopback], now.AddMinutes(-1), now.AddDays(1));
        using X509Certificate2 reader = ClusterCertificates.Issue(ca, Path.Combine(_dir, "ca"), "eve", CertificateHolder.OperatorRead, [], [], now.AddMinutes(-1), now.AddDays(1));

        var old = ClusterCertificates.Verify(expired, ca, now, CertificateHolder.Host);
        Assert.False(old.Ok);
        Assert.Contains("certificate \"CN=old, OU=kto-host\" refused: expired or not yet valid", old.Reason);
        Assert.Equal("no certificate was presented", ClusterCertificates.Verify(null, ca, now, CertificateHolder.Host).Reason);
        Assert.Equal(new CertificateVerdict(true, "", CertificateHolder.Host), ClusterCertificates.Verify(host, ca, now, CertificateHolder.Host));
        Assert.False(ClusterCertificates.Verify(host, ca, now.AddDays(2), CertificateHolder.Host).Ok); // the same certificate once it has expired
        var asHost = ClusterCertificates.Verify(reader, ca, now, CertificateHolder.Host);
        Assert.Equal("certificate \"CN=eve, OU=kto-operator-read\" refused: a kto-operator-read certificate, here kto-host is needed", asHost.Reason);
        Assert.Equal(CertificateHolder.OperatorRead, ClusterCertificates.Verify(reader, ca, now, CertificateHolder.OperatorRead, CertificateHolder.OperatorAdmin).Holder);

        // A self-signed certificate that copies the CA's name is not the CA.
        using var forgedKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var forged = new CertificateRequest(new X500DistinguishedName("CN=box, OU=kto-host"), forgedKey, HashAlgorithmName.SHA256);
        using X509Certificate2 selfSigned = forged.CreateSelfSigned(now.AddMinutes(-1), now.AddDays(1));
        Assert.Contains("not issued by this cluster's CA", ClusterCertificates.Verify(selfSigned, ca, now, CertificateHolder.Host).Reason);
    }
}
