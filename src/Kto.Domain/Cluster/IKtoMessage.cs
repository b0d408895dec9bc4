namespace Kto.Domain.Cluster;

/// <summary>
/// Marker of everything that crosses a process boundary or goes into the journal: one MessagePack serializer is
/// bound to it (explicit <c>[Key]</c> contracts, no typeless or contractless resolvers).
/// </summary>
public interface IKtoMessage;
