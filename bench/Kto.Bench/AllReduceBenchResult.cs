namespace Kto.Bench;

/// <summary>
/// Figures of <c>kto bench allreduce</c>, in MB/s (10⁶ bytes per second). Algorithm bandwidth is buffer bytes /
/// all-reduce time; bus bandwidth is algorithm bandwidth × 2(N − 1)/N (as NCCL defines it), the rate at which each
/// member's links carry data, which is what compares with a raw TCP stream.
/// </summary>
/// <param name="RawForwardMBps">One TCP stream, coordinator to peer, nothing else running.</param>
/// <param name="RawReverseMBps">One TCP stream, peer to coordinator.</param>
/// <param name="RawDuplexMBps">Both streams at once, per direction (the ring's traffic pattern with two members).</param>
/// <param name="Members">Ring members (processes).</param>
/// <param name="MedianMs">Median time of one all-reduce.</param>
/// <param name="AlgorithmMBps">Buffer bytes / median all-reduce time.</param>
/// <param name="Correct">The coordinator's result equals the exact sum of both processes' inputs.</param>
/// <param name="Identical">Both processes' results have the same checksum.</param>
public sealed record AllReduceBenchResult(
    double RawForwardMBps, double RawReverseMBps, double RawDuplexMBps,
    int Members, double MedianMs, double AlgorithmMBps, bool Correct, bool Identical)
{
    /// <summary>One-way raw throughput: the mean of the two directions.</summary>
    public double RawMBps => (RawForwardMBps + RawReverseMBps) / 2;

    /// <summary>Algorithm bandwidth × 2(N − 1)/N.</summary>
    public double BusMBps => AlgorithmMBps * 2 * (Members - 1) / Members;

    /// <summary>Bus bandwidth / one-way raw throughput: the headline ratio (goal ≥ 0.5).</summary>
    public double BusVsRaw => BusMBps / RawMBps;

    /// <summary>Bus bandwidth / per-direction raw throughput with both directions busy.</summary>
    public double BusVsRawDuplex => BusMBps / RawDuplexMBps;
}
