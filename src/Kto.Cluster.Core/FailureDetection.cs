using Akka.Configuration;

namespace Kto.Cluster.Core;

/// <summary>
/// Failure-detector and downing settings for training: a dead trainer must stop blocking steps within seconds, not after
/// Akka's defaults (a 10 s pause tolerance, then downing). Heartbeats every 500 ms; a member missing them for 2 s is
/// reported unreachable, and the coordinator leaves it out of the next step's membership at once. Downing is
/// <see cref="Downing.DowningPolicy"/> (through <see cref="Downing.CoordinatorDowningProvider"/>) instead of Akka's
/// split-brain resolver: only coordinator hosts down other members, so losing, freezing or regaining trainers never
/// takes a coordinator host down (docs/cluster.md, "Downing").
/// </summary>
public static class FailureDetection
{
    /// <summary>The HOCON every cluster host adds.</summary>
    public static Config Hocon() => ConfigurationFactory.ParseString($$"""
        akka.cluster.failure-detector {
          heartbeat-interval = 500ms
          acceptable-heartbeat-pause = 2s
          expected-response-after = 1s
        }
        akka.remote.watch-failure-detector {
          heartbeat-interval = 500ms
          acceptable-heartbeat-pause = 2s
        }
        akka.cluster.downing-provider-class = "{{Downing.CoordinatorDowningProvider.TypeName}}"
        """);
}
