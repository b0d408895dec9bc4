using System.CommandLine;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Kto.Cluster.Core.Security;

namespace Kto.Cluster.Cmd.Commands;

/// <summary>
/// <c>kto certs ca | host | operator | check</c>: the cluster's own CA and the certificates of its hosts and operators
/// (<see cref="ClusterCertificates"/>).
/// </summary>
internal static class CertsCommand
{
    /// <summary>Default validity of the CA: 10 years.</summary>
    public const int CaDays = 3650;

    /// <summary>Default validity of a host or operator certificate: 825 days (the longest the CA/Browser Forum allowed TLS server certificates from 2018 to 2020).</summary>
    public const int LeafDays = 825;

    public static Command Create()
    {
        var cmd = new Command("certs", "the cluster's own certificate authority and its hosts' and operators' certificates (keys readable by their owner only)")
        {
            Ca(), Host(), Operator(), Check(),
        };
        return cmd;
    }

    private static Option<DirectoryInfo> Dir() => new("--dir") { Description = "the folder of the CA (ca.crt, ca.key) and of the certificates it issues", Required = true };

    private static Option<int> Days(int defaultDays) => new("--days") { Description = $"days the certificate is valid (default {defaultDays})", DefaultValueFactory = _ => defaultDays };

    private static Option<string?> PasswordEnv() => new("--password-env")
    {
        Description = "name of an environment variable holding a password for the .pfx file (default: none; the files' mode keeps the key private)",
    };

    private static Command Ca()
    {
        var dir = Dir();
        var name = new Option<string>("--name") { Description = "the CA's common name", DefaultValueFactory = _ => "kto cluster CA" };
        var days = Days(CaDays);
        var cmd = new Command("ca", "make the cluster's CA: ca.crt (give it to every host and operator) and ca.key (keep it where certificates are issued)") { dir, name, days };
        cmd.SetAction(parse => Run(() =>
        {
            string d = parse.GetValue(dir)!.FullName;
            using X509Certificate2 ca = ClusterCertificates.CreateAuthority(d, parse.GetValue(name)!, TimeSpan.FromDays(Positive(parse.GetValue(days))));
            Console.WriteLine($"wrote {Path.Combine(d, ClusterCertificates.CaCertificateFile)} and {Path.Combine(d, ClusterCertificates.CaKeyFile)} (mode 0600): {ca.Subject}, valid until {ca.NotAfter.ToUniversalTime():yyyy-MM-dd} UTC, SHA-256 {ca.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256)}");
            return 0;
        }));
        return cmd;
    }

    private static Command Host()
    {
        var holder = new Argument<string>("NAME") { Description = "the host's name (its files are NAME.crt, NAME.key, NAME.pfx; also its first DNS name)" };
        var dir = Dir();
        var dns = new Option<string[]>("--dns") { Description = "more DNS names of the host", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        var ip = new Option<string[]>("--ip") { Description = "IP addresses the host is reached at", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        var days = Days(LeafDays);
        var password = PasswordEnv();
        var cmd = new Command("host", "issue a host's certificate (TLS server and client: Akka.Remote, the gradient ring, state transfer)") { holder, dir, dns, ip, days, password };
        cmd.SetAction(parse => Run(() =>
        {
            var ips = parse.GetValue(ip)!.Select(s => IPAddress.TryParse(s, out IPAddress? a) ? a : throw new ArgumentException($"--ip: \"{s}\" is not an IP address")).ToList();
            return Issue(parse.GetValue(dir)!.FullName, parse.GetValue(holder)!, CertificateHolder.Host, parse.GetValue(dns)!, ips, parse.GetValue(days), parse.GetValue(password));
        }));
        return cmd;
    }

    private static Command Operator()
    {
        var holder = new Argument<string>("NAME") { Description = "the operator's name (files NAME.crt, NAME.key, NAME.pfx)" };
        var dir = Dir();
        var role = new Option<string>("--role") { Description = "read: cluster show/status/leader, run status/history/tail, node list; admin: every command", Required = true };
        role.AcceptOnlyFromAmong("read", "admin");
        var days = Days(LeafDays);
        var password = PasswordEnv();
        var cmd = new Command("operator", "issue an operator's certificate for `kto HOST:PORT …` (TLS client only)") { holder, dir, role, days, password };
        cmd.SetAction(parse => Run(() => Issue(parse.GetValue(dir)!.FullName, parse.GetValue(holder)!,
            parse.GetValue(role) == "admin" ? CertificateHolder.OperatorAdmin : CertificateHolder.OperatorRead, [], [], parse.GetValue(days), parse.GetValue(password))));
        return cmd;
    }

    private static Command Check()
    {
        var file = new Argument<FileInfo>("CERT") { Description = "a certificate (.crt PEM or .pfx)" };
        var dir = Dir();
        var password = PasswordEnv();
        var cmd = new Command("check", "whether a certificate is this cluster's and valid now: prints what it is for, or why it would be refused (exit 1)") { file, dir, password };
        cmd.SetAction(parse => Run(() =>
        {
            FileInfo f = parse.GetValue(file)!;
            if (!f.Exists) throw new FileNotFoundException($"{f.FullName} not found", f.FullName);
            using X509Certificate2 ca = ClusterCertificates.LoadAuthority(parse.GetValue(dir)!.FullName, withKey: false);
            using X509Certificate2 cert = f.Extension.Equals(".pfx", StringComparison.OrdinalIgnoreCase)
                ? X509CertificateLoader.LoadPkcs12FromFile(f.FullName, Password(parse.GetValue(password)))
                : X509Certificate2.CreateFromPem(File.ReadAllText(f.FullName));
            CertificateVerdict verdict = ClusterCertificates.Verify(cert, ca, DateTimeOffset.UtcNow, Enum.GetValues<CertificateHolder>());
            if (!verdict.Ok)
            {
                Console.Error.WriteLine($"error: {verdict.Reason}");
                return 1;
            }
            Console.WriteLine($"{f.Name}: {ClusterCertificates.UnitOf(verdict.Holder!.Value)} \"{cert.GetNameInfo(X509NameType.SimpleName, false)}\", issued by {cert.Issuer}, valid until {cert.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC");
            return 0;
        }));
        return cmd;
    }

    private static int Issue(string dir, string name, CertificateHolder holder, IEnumerable<string> dns, IEnumerable<IPAddress> ips, int days, string? passwordEnv)
    {
        using X509Certificate2 ca = ClusterCertificates.LoadAuthority(dir, withKey: true);
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 cert = ClusterCertificates.Issue(ca, dir, name, holder, dns, ips, now.AddMinutes(-5), now.AddDays(Positive(days)), Password(passwordEnv));
        var sans = cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames().Concat(e.EnumerateIPAddresses().Select(a => a.ToString()))).ToList();
        Console.WriteLine($"wrote {Path.Combine(dir, name)}.crt, .key and .pfx (mode 0600{(passwordEnv is null ? "" : $", password from ${passwordEnv}")}): {ClusterCertificates.UnitOf(holder)} \"{name}\""
            + (sans.Count > 0 ? $" for {string.Join(", ", sans)}" : "") + $", valid until {cert.NotAfter.ToUniversalTime():yyyy-MM-dd} UTC");
        return 0;
    }

    /// <summary>Runs a subcommand: bad input, an existing file, an unreadable certificate or a directory it may not write end it with exit 1 and the reason.</summary>
    private static int Run(Func<int> body) => CommonOptions.Guard(() =>
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is IOException and not FileNotFoundException and not DirectoryNotFoundException
            or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    });

    private static string? Password(string? env)
    {
        if (env is null) return null;
        return Environment.GetEnvironmentVariable(env) is { Length: > 0 } value
            ? value
            : throw new ArgumentException($"--password-env: the environment variable {env} is not set or empty");
    }

    private static int Positive(int days) => days > 0 ? days : throw new ArgumentException($"--days must be at least 1, found {days}");
}
