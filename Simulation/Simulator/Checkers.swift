import CacheCore

/// The simulator's time constants, in nanoseconds of simulated time, named once.
enum SimulatedTime {
    static let millisecond: Int64 = 1_000_000
    static let second: Int64 = 1_000_000_000
    /// How often faults are drawn.
    static let faultStep: Int64 = 100 * millisecond
    /// The membership protocol period of simulated nodes (and the unit of the convergence bound).
    static let protocolPeriod: Int64 = 200 * millisecond
    static let probeTimeout: Int64 = 80 * millisecond
    static let suspicionTimeout: Int64 = 1 * second
    /// Longer than any node stays down in a run (at most 5.5 s), so that tombstones are collected
    /// within runs, yet never while a replica that missed a delete is away.
    static let tombstoneGrace: Int64 = 8 * second
    /// A crashed node restarts this long later, plus up to `crashDowntimeSpread`.
    static let crashDowntime: Int64 = 500 * millisecond
    static let crashDowntimeSpread: Int64 = 5 * second
    /// After a power loss every node restarts this long later, plus up to `powerDowntimeSpread`.
    static let powerDowntime: Int64 = 300 * millisecond
    static let powerDowntimeSpread: Int64 = 2 * second
    /// A client waits this long between requests, plus up to `clientPauseSpread`.
    static let clientPause: Int64 = 5 * millisecond
    static let clientPauseSpread: Int64 = 100 * millisecond
    /// The shortest fsync or snapshot write.
    static let minimumDiskLatency: Int64 = 50_000
    /// When the wall clocks of the simulated nodes start.
    static let origin = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
    /// The nodes' `maximumClockOffset`: above what drift does to their clocks in a run.
    static let maximumClockOffset: Int64 = 10 * second
}

/// Whether the cluster has converged: every node sees every other alive, all compute the same ring,
/// every key is held by each of its replicas at the same version and by no other node.
///
/// In memory-tight runs a replica may hold nothing for a key it evicted (anti-entropy does not push
/// a key back into a full store), but every replica that holds the key holds the same version.
enum ConvergenceChecker {
    /// `departed`: nodes gone for good (left, or forgotten), which every other must hold as left.
    /// `keepsTombstones`: a node that may keep tombstones the others collected (the node whose clock
    /// runs past the bound: it never collects on its own clock, and a lost `forget` is not sent
    /// again); a tombstone there against nothing elsewhere is not a disagreement, since a tombstone
    /// answers reads as nothing does.
    static func divergence(
        _ nodes: [SimulatedNode], departed: Set<Int> = [], allowsMissingReplicas: Bool,
        keepsTombstones: (index: Int, localTime: Instant)? = nil
    ) -> String? {
        let present = nodes.indices.filter { !departed.contains($0) }
        guard present.allSatisfy({ nodes[$0].isRunning }) else { return "a node is down" }
        let reference = nodes[present[0]].runtime!.node
        for index in present {
            let node = nodes[index].runtime!.node
            for other in present where node.membership.status(of: nodes[other].id) != .alive {
                let status = node.membership.status(of: nodes[other].id)
                return "n\(index) sees n\(other) as \(status.map { "\($0)" } ?? "unknown")"
            }
            for other in departed {
                if let status = node.membership.status(of: nodes[other].id), status != .left {
                    return "n\(index) sees departed n\(other) as \(status)"
                }
            }
            if node.ring.members != reference.ring.members { return "rings differ" }
        }
        var keys = Set<CacheKey>()
        for index in present { keys.formUnion(nodes[index].runtime!.node.store.sortedKeys) }
        for key in keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            let owners = reference.replicas(of: key.bytes)
            var versions: [Version?] = []
            for index in present {
                let entry = nodes[index].runtime!.node.store.entry(for: key)
                if owners.contains(nodes[index].id) {
                    versions.append(entry?.version)
                } else if entry != nil {
                    return "n\(index) still holds \(key), which it does not own"
                }
            }
            if isKeptTombstone(key, nodes: nodes, present: present, keeper: keepsTombstones) { continue }
            let described = versions.map { $0?.description ?? "none" }
            let held = allowsMissingReplicas ? described.filter { $0 != "none" } : described
            if Set(held).count > 1 {
                return "replicas of \(key) disagree: \(versions.map { $0?.description ?? "none" })"
            }
        }
        return nil
    }

    /// Whether `key` is a tombstone that `keeper` (the node whose clock runs past the bound, at its
    /// own time) holds and no other present node holds anything of.
    static func isKeptTombstone(
        _ key: CacheKey, nodes: [SimulatedNode], present: [Int], keeper: (index: Int, localTime: Instant)?
    ) -> Bool {
        guard let keeper, let entry = nodes[keeper.index].runtime?.node.store.entry(for: key),
            !entry.isLive(at: keeper.localTime)
        else { return false }
        return present.allSatisfy { $0 == keeper.index || nodes[$0].runtime?.node.store.entry(for: key) == nil }
    }
}

/// Membership alone: every live node sees every other live node alive and the crashed victim dead
/// (or never heard of it: a node that restarted from nothing after the victim went cannot know it),
/// and all compute the same ring.
enum MembershipChecker {
    static func disagreement(_ nodes: [SimulatedNode], victim: Int?) -> String? {
        let live = nodes.indices.filter { nodes[$0].isRunning }
        var rings: [[NodeID]] = []
        for observer in live {
            let membership = nodes[observer].runtime!.node.membership
            for member in live where membership.status(of: nodes[member].id) != .alive {
                return
                    "n\(observer) sees n\(member) as \(membership.status(of: nodes[member].id).map { "\($0)" } ?? "unknown")"
            }
            if let victim, let status = membership.status(of: nodes[victim].id), status != .dead {
                return "n\(observer) sees crashed n\(victim) as \(status)"
            }
            rings.append(membership.keyOwners)
        }
        if Set(rings.map { $0.map(\.rawValue).joined(separator: ",") }).count > 1 { return "rings differ" }
        return nil
    }
}

/// A replica says "stored" only once the write (or a newer one) is on its log as its policy counts
/// durable: synced under `always`, written under `interval` and `none`.
enum AcknowledgmentChecker {
    static func violation(_ message: PeerMessage, from node: SimulatedNode, index: Int) -> String? {
        guard case .replication(let replication) = message,
            case .writeReply(let request, .stored) = replication.body,
            let write = node.writesReceived[request]
        else { return nil }
        if write.collected, node.runtime?.node.store.entry(for: write.key) == nil { return nil }
        if node.durable[write.key].map({ $0 < write.version }) ?? true {
            return "durability: n\(index) acknowledged \(write.key)@\(write.version) before it was on its durable log"
        }
        return nil
    }
}

/// No node holds a version further ahead of its own clock than the bound: a clock set past it (a
/// broken one, or a forger's) never gets into another node's store, nor into its clock.
enum ClockChecker {
    static func violations(_ nodes: [SimulatedNode], localTime: (Int) -> Instant, bound: Duration) -> [String] {
        var found: [String] = []
        for index in nodes.indices {
            guard let state = nodes[index].runtime?.node else { continue }
            let limit = localTime(index).advanced(by: bound).nanosecondsSinceEpoch
            for key in state.store.sortedKeys {
                guard let version = state.store.entry(for: key)?.version, version.wall > limit else { continue }
                found.append("clock: n\(index) holds \(key) at \(version), past its clock's bound")
                break
            }
        }
        return found
    }
}
