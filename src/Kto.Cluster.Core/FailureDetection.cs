using Akka.Configuration;

namespace Kto.Cluster.Core;

/// <summary>
/// Failure-detector settings for training: a dead trainer must stop blocking steps within seconds, not after Akka's
/// defaults (a 10 s pause tolerance, then downing). Heartbeats every 500 ms; a member missing them for 2 s is reported
/// unreachable, and the coordinator leaves it out of the next step's membership at once. The split-brain resolver
/// decides by coordinators only, so losing trainers never takes the coordinator down.
/// </summary>
public static class FailureDetection
{
    /// <summary>The HOCON every cluster host adds.</summary>
    public static Config Hocon() => ConfigurationFactory.ParseString("""
        akka.cluster.failure-detector {
          heartbeat-interval = 500ms
          acceptable-heartbeat-pause = 2s
          expected-response-after = 1s
        }
        akka.remote.watch-failure-detector {
          heartbeat-interval = 500ms
          acceptable-heartbeat-pause = 2s
        }
        # Downing decisions count coordinators only: a partition never downs the side holding the coordinator
        # in favour of trainers (with 1 coordinator and 1 trainer, plain keep-majority could down either).
        # A side that lost every coordinator downs itself after 5 s (default 20 s); its trainers then join again and
        # keep their replicas, so a restarted coordinator finds them.
        akka.cluster.split-brain-resolver.stable-after = 5s
        akka.cluster.split-brain-resolver.active-strategy = keep-majority
        akka.cluster.split-brain-resolver.keep-majority.role = "coordinator"
        """);
}
