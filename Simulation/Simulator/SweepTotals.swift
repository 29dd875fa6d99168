/// What a sweep of seeded runs added up to: the figures `cache-sim` prints and the sweep test
/// judges (that the checkers had histories to check, and that every kind of fault happened).
public struct SweepTotals: Sendable {
    public private(set) var runs = 0
    public private(set) var failures = 0
    public private(set) var events = 0
    public private(set) var operations = 0
    public private(set) var linearizable = 0
    public private(set) var evictions = 0
    public private(set) var snapshots = 0
    public private(set) var connections = 0
    public private(set) var connectFailures = 0
    public private(set) var refusals = 0
    public private(set) var diskFaults = 0
    public private(set) var diskRefusals = 0
    public private(set) var repairs = 0
    public private(set) var readFailures = 0
    /// Power losses, by the runs' sync policy (`always`, `interval`, `none`).
    public private(set) var powerLossesByPolicy: [String: Int] = [:]
    /// How many runs had each node count.
    public private(set) var runsByNodeCount: [Int: Int] = [:]

    public init() {}

    /// Adds one run's figures.
    public mutating func add(_ result: SimulationResult) {
        runs += 1
        if !result.passed { failures += 1 }
        events += result.events
        operations += result.operations
        linearizable += result.linearizabilityChecked
        evictions += result.evictions
        snapshots += result.snapshots
        connections += result.linkConnections
        connectFailures += result.linkConnectFailures
        refusals += result.linkRefusals
        diskFaults += result.diskFaults
        diskRefusals += result.writesRefusedForDisk
        repairs += result.logRepairs
        readFailures += result.logReadFailures
        if result.powerLosses > 0, let policy = result.swarm.syncPolicy {
            let name: String
            switch policy {
            case .always: name = "always"
            case .interval: name = "interval"
            case .none: name = "none"
            }
            powerLossesByPolicy[name, default: 0] += result.powerLosses
        }
        runsByNodeCount[result.swarm.nodes, default: 0] += 1
    }
}
