using Akka.Configuration;

namespace Kto.Cluster.Core;

/// <summary>
/// Akka's scheduler ticks every 50 ms instead of its default 10 ms. The scheduler (<c>HashedWheelTimerScheduler</c>)
/// runs each tick on a .NET timer and a thread-pool worker, so at 10 ms every host woke two threads 100 times a second
/// for nothing: measured from /proc on a 2-trainer local cluster, the coordinator host used 0.050 cores and each
/// trainer's timer thread 0.020; at 50 ms, 0.029 and 0.006–0.007. What the hosts schedule (heartbeats every 500 ms,
/// gossip every second, the protocol's time-outs and retries of 100 ms and more) tolerates 50 ms of lateness.
/// </summary>
public static class SchedulerSettings
{
    /// <summary>The HOCON every cluster host adds (<c>akka.scheduler.tick-duration</c>).</summary>
    public static Config Hocon() => ConfigurationFactory.ParseString("akka.scheduler.tick-duration = 50ms");
}
