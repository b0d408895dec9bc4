using System.Net;
using System.Text;

namespace Kto.Cluster.Exchange.Wire;

/// <summary>The hash of an ordered member list that a <see cref="Hello"/> carries.</summary>
internal static class MembershipDigest
{
    /// <summary>Hash of the members' "address:port" texts in order, one per line.</summary>
    public static ulong Of(IReadOnlyList<IPEndPoint> members) =>
        Fingerprint64.Of(Encoding.UTF8.GetBytes(string.Join('\n', members.Select(m => m.ToString()))));
}
