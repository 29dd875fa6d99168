import CacheCore

/// What one simulated run found.
public struct SimulationResult: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var swarm: SwarmConfiguration
    /// A hash of every event processed, in order: the same seed must give the same hash.
    public var traceHash: UInt64
    public var events: Int
    /// Protocol periods of the liveness phase until the cluster converged, if it did.
    public var convergencePeriods: Int?
    /// Broken guarantees, one line each; empty when the run passed.
    public var violations: [String]
    /// The last events before the end, readable, for a failure report.
    public var lastEvents: [String]
    /// Client operations issued.
    public var operations = 0
    /// Keys whose history the linearizability checker verified.
    public var linearizabilityChecked = 0
    /// Values evicted during the run, over all nodes.
    public var evictions = 0
    /// Snapshots written during the run, over all nodes.
    public var snapshots = 0
    /// Client writes refused by a node whose clock ran ahead of the others' past the bound.
    public var writesRefusedForClock = 0
    /// Peer links: connections made, attempts that failed, and frames refused while a link backed
    /// off or its queue was full (the server's `PeerLinkStateMachine`, run under the run's faults).
    public var linkConnections = 0
    public var linkConnectFailures = 0
    public var linkRefusals = 0
    /// Disk faults injected (a full disk, a failed sync, a failed snapshot), writes refused because
    /// a log had failed (replicas' answers and clients' replies), and the repairs that made logs
    /// writable again.
    public var diskFaults = 0
    public var writesRefusedForDisk = 0
    public var logRepairs = 0
    /// Restarts that failed because a segment could not be read (the node stays down and is
    /// started again a second later, as a supervisor would).
    public var logReadFailures = 0
    /// Times every node lost power at once.
    public var powerLosses = 0
    /// Flags `cache-sim` needs besides the seed to replay this run.
    public var replayFlags = ""

    public var passed: Bool { violations.isEmpty }

    public var description: String {
        var text =
            "seed \(seed) \(passed ? "ok" : "FAILED") trace=\(String(traceHash, radix: 16)) events=\(events)"
            + (convergencePeriods.map { " converged after \($0) periods" } ?? "")
        if !passed {
            text += "\n  swarm: \(swarm)"
            for violation in violations { text += "\n  violation: \(violation)" }
            text += "\n  last events:"
            for event in lastEvents { text += "\n    \(event)" }
            text += "\n  replay: cache-sim --seed \(seed)\(replayFlags) --trace"
        }
        return text
    }
}

/// Runs whole nodes (`ClusterNode`: membership, ring, replication, log) in one process under one
/// seed, and checks the cluster's guarantees.
///
/// A virtual clock and an event queue drive everything: message deliveries through the real wire
/// codec (delayed, dropped, duplicated, reordered and partitioned by `SimulatedNetwork`), each node's
/// timer on its own drifting clock, disk syncs and snapshots (`SimulatedDisk`), crashes, power losses
/// and restarts through the real recovery. Two kinds of run:
///
/// - a cluster run: clients issue puts, gets and deletes at every consistency level; after the
///   safety phase everything heals, crashed nodes restart, and every key's replicas must agree within
///   a bound; then an idle period in which tombstones must be collected; then the history checkers;
/// - a membership run (no clients, no logs): the liveness phase also crashes one node, and the rest
///   must agree within a bound on who is alive, who is dead, and the ring.
