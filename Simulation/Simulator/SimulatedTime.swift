import CacheCore

/// The simulator's time: an `Instant` counted from `.epoch` when a run starts, moved by
/// `Duration`s. The nodes' own clocks are other instants (`SimulatedNode.localTime`), from
/// `origin`, with each node's offset and drift.
enum SimulatedTime {
    /// When a run starts.
    static let start = Instant.epoch
    /// How often faults are drawn.
    static let faultStep = Duration.milliseconds(100)
    /// The membership protocol period of simulated nodes (and the unit of the convergence bound).
    static let protocolPeriod = Duration.milliseconds(200)
    static let probeTimeout = Duration.milliseconds(80)
    static let suspicionTimeout = Duration.seconds(1)
    /// Longer than any node stays down in a run (at most 5.5 s), so that tombstones are collected
    /// within runs, yet never while a replica that missed a delete is away.
    static let tombstoneGrace = Duration.seconds(8)
    /// A crashed node restarts this long later, plus up to `crashDowntimeSpread`.
    static let crashDowntime = Duration.milliseconds(500)
    static let crashDowntimeSpread = Duration.seconds(5)
    /// After a power loss every node restarts this long later, plus up to `powerDowntimeSpread`.
    static let powerDowntime = Duration.milliseconds(300)
    static let powerDowntimeSpread = Duration.seconds(2)
    /// A client waits this long between requests, plus up to `clientPauseSpread`.
    static let clientPause = Duration.milliseconds(5)
    static let clientPauseSpread = Duration.milliseconds(100)
    /// The shortest fsync or snapshot write.
    static let minimumDiskLatency = Duration.microseconds(50)
    /// When the wall clocks of the simulated nodes start.
    static let origin = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
    /// The nodes' `maximumClockOffset`: above what drift does to their clocks in a run.
    static let maximumClockOffset = Duration.seconds(10)
}

extension Instant {
    static func + (instant: Instant, duration: Duration) -> Instant { instant.advanced(by: duration) }

    static func - (later: Instant, earlier: Instant) -> Duration { earlier.duration(to: later) }

    /// Seconds since the run started, for traces and histories.
    var simulatedSeconds: Double { Double(nanosecondsSinceEpoch) / 1e9 }
}

extension SplitMix64 {
    /// A duration drawn uniformly from `0 ..< bound` in whole nanoseconds (`bound` at least 1 ns).
    mutating func duration(below bound: Duration) -> Duration {
        .nanoseconds(Int64(below(Int(bound.nanoseconds))))
    }
}
