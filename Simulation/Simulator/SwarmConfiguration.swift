import CacheCore

/// The faults one run injects, and how hard: drawn from the run's seed, so that some runs are calm
/// and some brutal (swarm testing).
public struct SwarmConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var nodes: Int
    /// Chance that a message is lost.
    public var dropRate: Double
    /// Chance that a message is delivered twice.
    public var duplicateRate: Double
    /// Delivery delay range, nanoseconds; messages overtake each other within it.
    public var minimumLatency: Int64
    public var maximumLatency: Int64
    /// Partitions started per simulated second (symmetric, one-way, or one node isolated).
    public var partitionsPerSecond: Double
    /// Crashes per simulated second (a crashed node restarts later from nothing).
    public var crashesPerSecond: Double
    /// Largest clock rate error of a node, as a fraction (0.02: its clock runs up to 2% fast or slow).
    public var maximumClockDrift: Double
    /// Longest fsync, nanoseconds (cluster runs, whose nodes keep a log).
    public var maximumSyncLatency: Int64 = 0
    /// Power losses per simulated second: every node crashes at once (cluster runs).
    public var powerLossesPerSecond: Double = 0

    /// Draws a configuration for `nodes` nodes from `random`.
    public static func draw(nodes: Int, using random: inout SplitMix64) -> SwarmConfiguration {
        let calm = random.below(4) == 0
        let minimumLatency = Int64(100_000 + random.below(2_000_000))
        return SwarmConfiguration(
            nodes: nodes,
            dropRate: calm ? 0 : random.nextUnit() * 0.2,
            duplicateRate: calm ? 0 : random.nextUnit() * 0.05,
            minimumLatency: minimumLatency,
            maximumLatency: minimumLatency + Int64(random.below(calm ? 1_000_000 : 30_000_000)),
            partitionsPerSecond: calm ? 0 : random.nextUnit() * 0.3,
            crashesPerSecond: calm ? 0 : random.nextUnit() * 0.2,
            maximumClockDrift: random.nextUnit() * 0.05)
    }

    public var description: String {
        func percent(_ value: Double) -> String { String(Int((value * 1000).rounded())) + "‰" }
        return
            "nodes=\(nodes) drop=\(percent(dropRate)) duplicate=\(percent(duplicateRate)) "
            + "latency=\(minimumLatency / 1000)–\(maximumLatency / 1000)µs partitions/s=\(percent(partitionsPerSecond)) "
            + "crashes/s=\(percent(crashesPerSecond)) drift≤\(percent(maximumClockDrift))"
            + (maximumSyncLatency > 0 ? " fsync≤\(maximumSyncLatency / 1000)µs" : "")
            + (powerLossesPerSecond > 0 ? " power-losses/s=\(percent(powerLossesPerSecond))" : "")
    }
}
