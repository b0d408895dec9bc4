using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Kto.Cluster.Core.Security;

namespace Kto.Cluster.GpuNode.Tests;

/// <summary>
/// A cluster with TLS on (host configs' <c>"tls"</c>), with real processes: hosts authenticate each other by the
/// cluster's CA on Akka.Remote and on the gradient ring, strangers get nothing, and operators need a certificate with
/// the right role. The run uses full_determinism, so the TLS ring's result is checked byte for byte against kto train.
/// </summary>
public sealed class TlsTests(Xunit.Abstractions.ITestOutputHelper output) : ClusterTestBase(output)
{
    /// <summary>Every .pfx of the test is protected by this password, which hosts and the tool read from <see cref="PasswordVariable"/>.</summary>
    private readonly string _secret = "pfx-" + Guid.NewGuid().ToString("N");

    private readonly string _passwordVariable = "KTO_TEST_PFX_PASSWORD_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    private sealed class Certificates(string dir, string passwordVariable)
    {
        public string Dir { get; } = dir;

        public string PasswordVariable { get; } = passwordVariable;

        public string Pfx(string name) => Path.Combine(Dir, name + ".pfx");

        public string Ca => Path.Combine(Dir, ClusterCertificates.CaCertificateFile);

        /// <summary>The tool's leading options for operator <paramref name="name"/>.</summary>
        public string[] Operator(string name) => ["--cert", Pfx(name), "--ca", Ca, "--password-env", PasswordVariable];
    }

    /// <summary>The cluster's CA with host certificates for the coordinator and the trainers, operators "admin" and "reader", and an expired host certificate.</summary>
    private Certificates MakeCertificates(string dir, string caName)
    {
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 ca = ClusterCertificates.CreateAuthority(dir, caName, TimeSpan.FromDays(2));
        void Issue(string name, CertificateHolder holder, DateTimeOffset from, DateTimeOffset to) =>
            ClusterCertificates.Issue(ca, dir, name, holder, [], [IPAddress.Loopback], from, to, _secret).Dispose();
        Issue("coordinator", CertificateHolder.Host, now.AddMinutes(-5), now.AddDays(1));
        Issue("trainers", CertificateHolder.Host, now.AddMinutes(-5), now.AddDays(1));
        Issue("expired", CertificateHolder.Host, now.AddDays(-3), now.AddDays(-1));
        Issue("admin", CertificateHolder.OperatorAdmin, now.AddMinutes(-5), now.AddDays(1));
        Issue("reader", CertificateHolder.OperatorRead, now.AddMinutes(-5), now.AddDays(1));
        return new Certificates(dir, _passwordVariable);
    }

    /// <summary>Adds <c>"tls"</c> with <paramref name="name"/>'s certificate to the host config at <paramref name="config"/> (its seeds then akka.ssl.tcp), written to <paramref name="into"/>.</summary>
    private static string WithTls(string config, string into, Certificates certs, string name)
    {
        string json = File.ReadAllText(config).TrimEnd().TrimEnd('}').Replace("\"akka.tcp://", "\"akka.ssl.tcp://", StringComparison.Ordinal);
        File.WriteAllText(into, json + $", \"tls\": {{\"certificate\": {System.Text.Json.JsonSerializer.Serialize(certs.Pfx(name))}, \"ca\": {System.Text.Json.JsonSerializer.Serialize(certs.Ca)}, \"password_env\": \"{certs.PasswordVariable}\"}}}}");
        return into;
    }

    /// <summary>A TLS client presenting <paramref name="certificate"/> to 127.0.0.1:<paramref name="port"/>: whether the connection survived the handshake and a first read.</summary>
    private static async Task<bool> TlsConnectionSurvives(int port, X509Certificate2 certificate)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        await using var tls = new SslStream(client.GetStream());
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "kto", ClientCertificates = [certificate], RemoteCertificateValidationCallback = (_, _, _, _) => true,
                LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate,
            });
            // TLS 1.3: the server checks the client's certificate after the client's handshake ends; its verdict comes with the next read.
            using var read = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            return await tls.ReadAsync(new byte[1], read.Token) > 0;
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return true; // still open and silent: not refused
        }
    }

    [Fact]
    public async Task StrangersGetNoMembershipNoRingConnectionAndNoCommandsWhileTheRunGoesOnOverTls()
    {
        Environment.SetEnvironmentVariable(_passwordVariable, _secret); // inherited by every process the test starts
        await using var cluster = new LocalCluster(Output, maxSteps: 48, learningRate: 3e-3, fullDeterminism: true);
        Certificates certs = MakeCertificates(Path.Combine(cluster.Dir, "certs"), "test cluster CA");
        Certificates other = MakeCertificates(Path.Combine(cluster.Dir, "other"), "another CA");
        WithTls(cluster.CoordinatorConfig, cluster.CoordinatorConfig, certs, "coordinator");
        string plainNode = Path.Combine(cluster.Dir, "node-plain.json");
        File.Copy(cluster.NodeConfig, plainNode);
        string strangerNode = WithTls(cluster.NodeConfig, Path.Combine(cluster.Dir, "node-other-ca.json"), other, "trainers");
        string expiredNode = WithTls(cluster.NodeConfig, Path.Combine(cluster.Dir, "node-expired.json"), certs, "expired");
        WithTls(cluster.NodeConfig, cluster.NodeConfig, certs, "trainers");
        var toolOutputs = new List<string>();
        string Tool(string op, params string[] args)
        {
            string said = KtoTool.Run(cluster.Port, [.. certs.Operator(op), .. args]);
            toolOutputs.Add(said);
            return said;
        }

        var coordinator = cluster.StartCoordinator();
        await coordinator.WaitFor("coordinator ready", cluster.Guard);
        Assert.Contains(coordinator.Lines, l => l.Contains("TLS: Akka.Remote with mutual authentication", StringComparison.Ordinal));
        Assert.Contains("will pause once 1 steps are committed", Tool("admin", "run", "pause", "--at", "1"));
        var t1 = cluster.StartTrainer("t1");
        await cluster.PausedAt(coordinator, 1);
        Assert.Equal("t1", MembersOf(coordinator.Commits[^1]));

        // Operators: none, a read-only one, another CA's.
        string none = KtoTool.Run(cluster.Port, "run", "status");
        Output.WriteLine($"without a certificate: {none}");
        Assert.Contains("pass --cert", none);
        string read = Tool("reader", "run", "status");
        Assert.Contains("paused", read);
        string refused = Tool("reader", "run", "resume");
        Output.WriteLine($"read-only resume: {refused}");
        Assert.Contains("run resume refused", refused);
        Assert.Contains("kto-operator-admin", refused);
        Assert.Contains("paused", Tool("reader", "run", "status"));
        // The interactive mode signs each command the same way: a read is answered, a change refused, and the session goes on.
        string session = KtoTool.RunWithInput(cluster.Port, "run status\nrun resume\nnode list\nexit\n", certs.Operator("reader"));
        toolOutputs.Add(session);
        Output.WriteLine($"interactive, read-only: {session}");
        Assert.Contains("paused", session);
        Assert.Contains("run resume refused", session);
        Assert.Contains("t1", session); // node list, after the refusal
        string foreign = KtoTool.Run(cluster.Port, [.. other.Operator("admin"), "run", "resume"]);
        Output.WriteLine($"another CA's admin: {foreign}");
        Assert.DoesNotContain("resumed", foreign);
        Assert.Contains("the host's TLS certificate was refused", foreign); // the tool checks the host too
        Assert.Contains("not issued by this cluster's CA", foreign);
        await coordinator.WaitFor(l => l.Contains("TLS: refused the connection", StringComparison.Ordinal) && l.Contains("not issued by this cluster's CA", StringComparison.Ordinal),
            cluster.Guard, "the coordinator refusing another CA's operator");

        // Hosts: another CA's certificate (both sides refuse the other), none at all, an expired one.
        var stranger = cluster.Start("t3", "Kto.Cluster.GpuNode.dll", "node", "--config", strangerNode, "--trainer-id", "t3", "--data-endpoint", "127.0.0.1:0");
        await stranger.WaitFor(l => l.Contains("TLS: refused the connection", StringComparison.Ordinal) && l.Contains("not issued by this cluster's CA", StringComparison.Ordinal),
            cluster.Guard, "t3 refusing the coordinator's certificate");
        var plain = cluster.Start("t4", "Kto.Cluster.GpuNode.dll", "node", "--config", plainNode, "--trainer-id", "t4", "--data-endpoint", "127.0.0.1:0");
        await plain.WaitFor(l => l.Contains("Couldn't join seed nodes after [3] attempts", StringComparison.Ordinal), cluster.Guard, "t4 failing to join three times");
        var expired = cluster.Start("t5", "Kto.Cluster.GpuNode.dll", "node", "--config", expiredNode, "--trainer-id", "t5", "--data-endpoint", "127.0.0.1:0");
        Assert.Equal(2, await expired.WaitForExit(cluster.Guard));
        Assert.Contains(expired.Lines, l => l.StartsWith("error: ", StringComparison.Ordinal) && l.Contains("expired or not yet valid", StringComparison.Ordinal));
        // The expired certificate presented anyway, to the coordinator's Akka port and to t1's ring port; another CA's to the ring.
        string ringLine = await t1.WaitFor("ring endpoint", cluster.Guard);
        int ringPort = int.Parse(ringLine[(ringLine.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        using (X509Certificate2 expiredCert = X509CertificateLoader.LoadPkcs12FromFile(certs.Pfx("expired"), _secret))
        using (X509Certificate2 foreignCert = X509CertificateLoader.LoadPkcs12FromFile(other.Pfx("trainers"), _secret))
        {
            Assert.False(await TlsConnectionSurvives(cluster.Port, expiredCert));
            await coordinator.WaitFor(l => l.Contains("TLS: refused the connection", StringComparison.Ordinal) && l.Contains("expired or not yet valid", StringComparison.Ordinal),
                cluster.Guard, "the coordinator refusing an expired certificate");
            Assert.False(await TlsConnectionSurvives(ringPort, expiredCert));
            Assert.False(await TlsConnectionSurvives(ringPort, foreignCert));
        }
        await t1.WaitFor(l => l.Contains("ring: TLS refused a connection", StringComparison.Ordinal) && l.Contains("expired or not yet valid", StringComparison.Ordinal), cluster.Guard, "t1's ring refusing the expired certificate");
        await t1.WaitFor(l => l.Contains("ring: TLS refused a connection", StringComparison.Ordinal) && l.Contains("not issued by this cluster's CA", StringComparison.Ordinal), cluster.Guard, "t1's ring refusing another CA's");
        string nodes = Tool("reader", "node", "list");
        Output.WriteLine(nodes);
        foreach (string id in new[] { "t3", "t4", "t5" }) Assert.DoesNotContain(id, nodes);
        string members = Tool("reader", "cluster", "show");
        Assert.Equal(2, members.Split('\n').Count(l => l.StartsWith("akka.ssl.tcp://", StringComparison.Ordinal)));
        foreach (var p in new[] { stranger, plain })
        {
            Assert.DoesNotContain(p.Lines, l => l.Contains("took over the state", StringComparison.Ordinal) || l.Contains("registered with the coordinator", StringComparison.Ordinal));
            p.Kill();
        }

        // A second trainer with the cluster's certificate joins over TLS (Akka.Remote, state transfer, the ring) and the run ends as kto train's.
        var t2 = cluster.StartTrainer("t2");
        await t2.WaitFor("took over the state of step", cluster.Guard);
        Assert.Contains("resumed", Tool("admin", "run", "resume"));
        await coordinator.WaitFor(l => MembersOf(l) == "t1,t2" && l.Contains(" committed:", StringComparison.Ordinal), cluster.Guard, "a commit by t1,t2");
        await coordinator.WaitFor("; final checkpoint ", cluster.Guard);
        Assert.Equal(0, await coordinator.WaitForExit(cluster.Guard));
        cluster.SingleProcessWeights();
        string ours = Path.Combine(cluster.OutputDir, $"checkpoint-{cluster.MaxSteps}"), theirs = Path.Combine(cluster.Dir, "single", $"checkpoint-{cluster.MaxSteps}");
        foreach (string file in new[] { "model.safetensors", "optimizer.safetensors" })
            Assert.True(File.ReadAllBytes(Path.Combine(ours, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(theirs, file))), $"{file} differs from kto train's");

        // The key password was read from the environment by every host and the tool, and is written nowhere: not in
        // any process's output, the tool's answers, the run's folders (journal, metrics.jsonl, checkpoints) or configs.
        toolOutputs.Add(KtoTool.Run(cluster.Port, [.. certs.Operator("reader"), "run", "status"]));
        Assert.DoesNotContain(cluster.AllLines(), l => l.Contains(_secret, StringComparison.Ordinal));
        Assert.DoesNotContain(toolOutputs, o => o.Contains(_secret, StringComparison.Ordinal));
        byte[] needle = System.Text.Encoding.UTF8.GetBytes(_secret);
        var files = Directory.EnumerateFiles(cluster.Dir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".pfx", StringComparison.Ordinal)).ToList();
        Assert.Contains(files, f => f.EndsWith("metrics.jsonl", StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith(".db", StringComparison.Ordinal) || f.EndsWith(".sqlite", StringComparison.Ordinal));
        foreach (string f in files)
            Assert.True(File.ReadAllBytes(f).AsSpan().IndexOf(needle) < 0, $"{f} holds the key password");
    }
}
