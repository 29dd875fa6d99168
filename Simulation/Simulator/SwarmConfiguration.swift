import CacheCore

/// The shape of one run and the faults it injects, drawn from the run's seed, so that some runs are
/// calm and some brutal (swarm testing), and the cluster's size, replication factor, sync policy and
/// limits vary too: a bug that needs five nodes, or a full store, hides from a sweep that always
/// uses three.
public struct SwarmConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var nodes: Int
    public var replicationFactor: Int
    /// Chance that a message is lost.
    public var dropRate: Double
    /// Chance that a message is delivered twice.
    public var duplicateRate: Double
    /// Delivery delay range; messages overtake each other within it.
    public var minimumLatency: Duration
    public var maximumLatency: Duration
    /// Partitions started per simulated second (symmetric, one-way, or one node isolated).
    public var partitionsPerSecond: Double
    /// Crashes per simulated second (a crashed node restarts later from its disk).
    public var crashesPerSecond: Double
    /// Largest clock rate error of a node, as a fraction (0.02: its clock runs up to 2% fast or slow).
    public var maximumClockDrift: Double
    /// Longest fsync.
    public var maximumSyncLatency: Duration
    /// Power losses per simulated second: every node crashes at once, losing what it had not synced.
    /// Under `always` nothing acknowledged may be lost; under `interval`, only writes acknowledged
    /// within the last sync interval; under `none`, any acknowledged before the loss.
    public var powerLossesPerSecond: Double
    /// The nodes' log policy (`nil` for membership runs, which keep no log).
    public var syncPolicy: SyncPolicy?
    /// A small entry limit for memory-tight runs, so that eviction runs under faults.
    public var maximumEntries: Int?
    /// Log size at which a node compacts (small, so that runs compact often).
    public var compactionBytes: Int
    /// A change of membership an operator makes during the run (cluster runs only).
    public var membershipChange: MembershipChange = .none
    /// One node's clock runs ahead of the others' by more than the maximum offset (cluster runs):
    /// it must refuse the writes it would coordinate, and no node may adopt a version from it.
    public var fastClock = false
    /// Faults of the nodes' disks per simulated second (cluster runs): a disk fills up for a while,
    /// a sync fails, a snapshot cannot be written. Writes are refused meanwhile; nothing
    /// acknowledged may be lost.
    public var diskFaultsPerSecond: Double = 0

    /// What an operator does to the cluster during a run.
    public enum MembershipChange: String, Sendable, Equatable {
        case none
        /// The last node starts late and joins through its seeds.
        case join
        /// A node leaves on purpose, handing its keys off, and is gone.
        case leave
        /// A node crashes for good and another is told to forget it.
        case forget
    }

    /// Draws a configuration from `random`. Every draw is made whatever `nodes` says, so a run's
    /// stream is the same whether its node count was drawn or given.
    public static func draw(
        nodes: Int?, replicationFactor: Int?, keepsLogs: Bool, using random: inout SplitMix64
    ) -> SwarmConfiguration {
        let drawnNodes = 3 + random.below(5)
        let nodeCount = nodes ?? drawnNodes
        let calm = random.below(4) == 0
        let minimumLatency = Duration.microseconds(100) + random.duration(below: .milliseconds(2))
        let factorDraw = random.below(20)
        let drawnFactor = factorDraw < 12 ? 3 : factorDraw < 15 ? 2 : factorDraw < 17 ? 1 : 5
        let policyDraw = random.below(20)
        let intervalMilliseconds = 5 + random.below(45)
        let policy: SyncPolicy =
            policyDraw < 14 ? .always : policyDraw < 17 ? .interval(.milliseconds(intervalMilliseconds)) : .none
        let tight = random.below(4) == 0
        let entries = 3 + random.below(6)
        let compaction = (2 + random.below(62)) << 10
        let steady = random.below(3) == 0
        var swarm = SwarmConfiguration(
            nodes: nodeCount,
            replicationFactor: min(replicationFactor ?? drawnFactor, nodeCount),
            dropRate: calm ? 0 : random.nextUnit() * 0.2,
            duplicateRate: calm ? 0 : random.nextUnit() * 0.05,
            minimumLatency: minimumLatency,
            maximumLatency: minimumLatency + random.duration(below: calm ? .milliseconds(1) : .milliseconds(30)),
            partitionsPerSecond: calm ? 0 : random.nextUnit() * 0.3,
            crashesPerSecond: calm ? 0 : random.nextUnit() * 0.2,
            maximumClockDrift: random.nextUnit() * 0.05,
            maximumSyncLatency: .microseconds(100)
                + random.duration(below: random.below(2) == 0 ? .milliseconds(2) : .milliseconds(40)),
            powerLossesPerSecond: 0,
            syncPolicy: keepsLogs ? policy : nil,
            maximumEntries: keepsLogs && tight ? entries : nil,
            compactionBytes: compaction)
        let powerLoss = random.nextUnit() * 0.1
        if keepsLogs {
            // A third of the runs keep membership steady (lossy network, no partitions or crashes), so
            // that replica sets stay put and the linearizability checker has whole histories to judge.
            if steady {
                swarm.partitionsPerSecond = 0
                swarm.crashesPerSecond = 0
            }
            if swarm.crashesPerSecond > 0, policy == .always, random.below(2) == 0 {
                swarm.powerLossesPerSecond = powerLoss
            }
        }
        // Drawn last, so that every other draw of a seed is what it was before this existed.
        let change = random.below(12)
        if keepsLogs {
            swarm.membershipChange = change < 6 ? .none : change < 8 ? .join : change < 10 ? .leave : .forget
        }
        let fast = random.below(8)
        if keepsLogs { swarm.fastClock = fast == 0 }
        // Drawn after everything else, so that earlier draws of a seed are what they were before.
        let disks = random.nextUnit()
        if keepsLogs, disks < 0.4 { swarm.diskFaultsPerSecond = 0.05 + disks * 0.5 }
        // Power losses under `interval` and `none` too, against the bound the README states for each
        // (drawn last, for the same reason).
        let otherPolicyPower = random.below(2)
        if keepsLogs, swarm.crashesPerSecond > 0, policy != .always, otherPolicyPower == 0 {
            swarm.powerLossesPerSecond = powerLoss
        }
        return swarm
    }

    public var description: String {
        func permille(_ value: Double) -> String { String(Int((value * 1000).rounded())) + "‰" }
        return
            "nodes=\(nodes) rf=\(replicationFactor) drop=\(permille(dropRate)) duplicate=\(permille(duplicateRate)) "
            + "latency=\(minimumLatency.nanoseconds / 1000)–\(maximumLatency.nanoseconds / 1000)µs partitions/s=\(permille(partitionsPerSecond)) "
            + "crashes/s=\(permille(crashesPerSecond)) drift≤\(permille(maximumClockDrift))"
            + (syncPolicy.map {
                " sync=\($0) fsync≤\(maximumSyncLatency.nanoseconds / 1000)µs compact@\(compactionBytes >> 10)KiB"
            }
                ?? "")
            + (powerLossesPerSecond > 0 ? " power-losses/s=\(permille(powerLossesPerSecond))" : "")
            + (maximumEntries.map { " max-entries=\($0)" } ?? "")
            + (membershipChange == .none ? "" : " change=\(membershipChange.rawValue)")
            + (fastClock ? " fast-clock" : "")
            + (diskFaultsPerSecond > 0 ? " disk-faults/s=\(permille(diskFaultsPerSecond))" : "")
    }
}
