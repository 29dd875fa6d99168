import CacheCore
import Foundation
import NIOCore

/// What the cluster page (`/ui`) shows, made from what a node gathers once a tick: its own view of
/// the members and the ring, and every live member's `/stats`. Pure: the feed hands the inputs in
/// and sends the documents out, so rates, percentiles and the moves of a ring change are tested
/// without a cluster.
///
/// Rates are taken between two documents of the same node, so they are exact over the time
/// between them whatever the tick; a node whose uptime went back restarted, and its first
/// document after that starts its rates again.
struct ClusterPageModel {
    /// How many points per node the charts keep (`history` ticks), and in all (a bound on memory
    /// whatever the cluster's size: a large cluster keeps fewer minutes).
    let historyPerNode: Int
    let historyPoints: Int
    /// Equal arcs the ring is drawn in: each is coloured by the primary owner of its middle.
    static let ringSectors = 256

    /// A member as this node sees it.
    struct Member: Sendable, Equatable {
        var id: String
        var address: String
        var clientAddress: String
        var status: String
        var incarnation: UInt64
        /// Seconds since this node last heard from it (0 for itself, `nil` if never).
        var lastContactSeconds: Double?
        var ringShare: Double
    }

    /// What the node's own loop reports each tick.
    struct LocalView: Sendable, Equatable {
        var me: String
        var members: [Member]
        var ringVersion: UInt64
        var ringMembers: [String]
        var virtualNodes: Int
        var replicationFactor: Int
        /// Primary owner of each of `ringSectors` equal arcs, as an index into `ringMembers`.
        var sectors: [Int]
        /// Keys this node still has to hand off before it has left (`nil`: not leaving).
        var leavingKeys: Int?
    }

    /// The figures of one node's `/stats` the page uses.
    struct Figures: Sendable, Equatable {
        var uptimeSeconds: Double
        var gets: UInt64 = 0
        var puts: UInt64 = 0
        var deletes: UInt64 = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var evictions: UInt64 = 0
        var repairs: UInt64 = 0
        var unavailable: UInt64 = 0
        /// Data routes' answers at or below each of `latencyBounds` (cumulative), and all of them.
        var latencyBuckets: [UInt64] = []
        var latencyCount: UInt64 = 0
        var latencyBounds: [Double] = []
        var entries = 0
        var memoryBytes: Int?
        var memoryLimitBytes: Int?
        var handoffBacklog = 0
        var tombstoneBacklog = 0
        /// `ok`, `disabled`, `starting` or `failed: …`.
        var wal = "disabled"
        var walBytes: Int?
        var status = "serving"

        /// Reads a `/stats` document; `nil` when it is not one.
        init?(stats: [String: Any]) {
            guard let uptime = stats["uptime_seconds"] as? Double ?? (stats["uptime_seconds"] as? Int).map(Double.init)
            else { return nil }
            uptimeSeconds = uptime
            func count(_ value: Any?) -> UInt64 { (value as? NSNumber).map { $0.uint64Value } ?? 0 }
            let ops = stats["ops"] as? [String: Any] ?? [:]
            gets = count(ops["get"])
            puts = count(ops["put"])
            deletes = count(ops["delete"])
            hits = count(stats["hits"])
            misses = count(stats["misses"])
            evictions = count(stats["evictions"])
            let replication = stats["replication"] as? [String: Any] ?? [:]
            repairs = count(replication["read_repairs"]) &+ count(replication["anti_entropy_keys_pushed"])
            entries = stats["entries"] as? Int ?? 0
            let bytes = stats["bytes"] as? [String: Any] ?? [:]
            memoryBytes = bytes["jemalloc_allocated"] as? Int ?? bytes["estimated"] as? Int
            memoryLimitBytes = (stats["limits"] as? [String: Any])?["max_memory_bytes"] as? Int
            let backlog = stats["backlog"] as? [String: Any] ?? [:]
            handoffBacklog = backlog["handoff"] as? Int ?? 0
            tombstoneBacklog = backlog["tombstones"] as? Int ?? 0
            status = stats["status"] as? String ?? "?"
            switch stats["persistence"] {
            case let word as String:
                wal = word
            case let persistence as [String: Any]:
                wal = persistence["state"] as? String ?? "?"
                walBytes = persistence["log_bytes"] as? Int
            default:
                wal = "?"
            }
            let http = stats["http"] as? [String: Any] ?? [:]
            latencyBounds = http["latency_bounds_seconds"] as? [Double] ?? []
            for case let route as [String: Any] in (http["routes"] as? [String: Any] ?? [:]).values {
                unavailable &+= count(route["unavailable"])
                latencyCount &+= count(route["answered"])
                let buckets = (route["latency_buckets"] as? [Any] ?? []).map(count)
                if latencyBuckets.isEmpty { latencyBuckets = Array(repeating: 0, count: buckets.count) }
                guard buckets.count == latencyBuckets.count else { continue }
                for index in buckets.indices { latencyBuckets[index] &+= buckets[index] }
            }
            if latencyBuckets.count != latencyBounds.count { latencyBuckets = [] }
        }

        init(uptimeSeconds: Double) { self.uptimeSeconds = uptimeSeconds }
    }

    /// One node's point on the charts: rates over the time since its previous document.
    struct Sample: Sendable, Equatable {
        var unixMilliseconds: Int64
        var getsPerSecond = 0.0
        var putsPerSecond = 0.0
        var deletesPerSecond = 0.0
        /// Hits over reads that found or missed a key (`nil`: no such read).
        var hitRatio: Double?
        var p50Seconds: Double?
        var p99Seconds: Double?
        var evictionsPerSecond = 0.0
        var unavailablePerSecond = 0.0
        var repairsPerSecond = 0.0
        var figures: Figures
    }

    /// A ring change and what it moves (the plan endpoint's view of it, after the fact).
    struct Moves: Sendable, Equatable {
        var unixMilliseconds: Int64
        var fromVersion: UInt64
        var toVersion: UInt64
        var plan: RingPlan
    }

    private var previous: [String: (figures: Figures, unixMilliseconds: Int64)] = [:]
    private(set) var history: [String: [Sample]] = [:]
    private(set) var moves: Moves?
    private var lastView: LocalView?
    /// Ring changes are the page's events too; the node's own come from its event log.
    private(set) var ringEvents: [ClusterEventLog.Event] = []
    private var nextRingEvent: UInt64 = 1

    init(historyPerNode: Int = 300, historyPoints: Int = 30_000) {
        precondition(historyPerNode > 0 && historyPoints > 0, "ClusterPageModel: room for some history")
        self.historyPerNode = historyPerNode
        self.historyPoints = historyPoints
    }

    /// The percentile `quantile` of the answers between two cumulative histograms, interpolated
    /// within its bucket as Prometheus's `histogram_quantile` does (`nil` when nothing was answered;
    /// the last bound when the percentile lies past it).
    static func percentile(
        _ quantile: Double, bounds: [Double], cumulative: [UInt64], total: UInt64
    ) -> Double? {
        guard total > 0, bounds.count == cumulative.count, !bounds.isEmpty else { return nil }
        let rank = quantile * Double(total)
        var below: UInt64 = 0
        for (index, count) in cumulative.enumerated() {
            if Double(count) >= rank, count > below {
                let lower = index == 0 ? 0 : bounds[index - 1]
                let fraction = (rank - Double(below)) / Double(count - below)
                return lower + (bounds[index] - lower) * min(1, max(0, fraction))
            }
            below = count
        }
        return bounds.last
    }

    /// Takes one node's document, read at `unixMilliseconds`, and returns its new point (`nil` for
    /// its first document, or the first after a restart: there is nothing to take a rate against).
    mutating func record(_ node: String, _ figures: Figures, unixMilliseconds: Int64) -> Sample? {
        defer { previous[node] = (figures, unixMilliseconds) }
        guard let (before, _) = previous[node], figures.uptimeSeconds > before.uptimeSeconds else { return nil }
        let seconds = figures.uptimeSeconds - before.uptimeSeconds
        func rate(_ now: UInt64, _ then: UInt64) -> Double { now >= then ? Double(now - then) / seconds : 0 }
        var sample = Sample(unixMilliseconds: unixMilliseconds, figures: figures)
        sample.getsPerSecond = rate(figures.gets, before.gets)
        sample.putsPerSecond = rate(figures.puts, before.puts)
        sample.deletesPerSecond = rate(figures.deletes, before.deletes)
        let hits = figures.hits &- before.hits
        let misses = figures.misses &- before.misses
        if figures.hits >= before.hits, figures.misses >= before.misses, hits + misses > 0 {
            sample.hitRatio = Double(hits) / Double(hits + misses)
        }
        sample.evictionsPerSecond = rate(figures.evictions, before.evictions)
        sample.unavailablePerSecond = rate(figures.unavailable, before.unavailable)
        sample.repairsPerSecond = rate(figures.repairs, before.repairs)
        if figures.latencyBuckets.count == before.latencyBuckets.count, figures.latencyCount >= before.latencyCount,
            zip(figures.latencyBuckets, before.latencyBuckets).allSatisfy({ $0 >= $1 })
        {
            let window = zip(figures.latencyBuckets, before.latencyBuckets).map { $0 - $1 }
            let total = figures.latencyCount - before.latencyCount
            sample.p50Seconds = Self.percentile(
                0.5, bounds: figures.latencyBounds, cumulative: window, total: total)
            sample.p99Seconds = Self.percentile(
                0.99, bounds: figures.latencyBounds, cumulative: window, total: total)
        }
        var points = history[node] ?? []
        points.append(sample)
        // Each node keeps an equal part of the total, and never more than its own bound.
        let kept = max(1, min(historyPerNode, historyPoints / max(1, max(history.count, previous.count))))
        if points.count > kept { points.removeFirst(points.count - kept) }
        history[node] = points
        return sample
    }

    /// Takes this node's view of the cluster; a ring that changed since the last one is recorded
    /// with what it moves, and returned as an event.
    @discardableResult
    mutating func observe(_ view: LocalView, unixMilliseconds: Int64) -> ClusterEventLog.Event? {
        defer { lastView = view }
        // Members forgotten long ago leave the charts with the view.
        let known = Set(view.members.map(\.id))
        for node in history.keys where !known.contains(node) {
            history[node] = nil
            previous[node] = nil
        }
        guard let last = lastView, last.ringVersion != view.ringVersion else { return nil }
        let before = Set(last.ringMembers)
        let after = Set(view.ringMembers)
        let adding = view.ringMembers.filter { !before.contains($0) }.map(NodeID.init)
        let removing = last.ringMembers.filter { !after.contains($0) }.map(NodeID.init)
        moves = Moves(
            unixMilliseconds: unixMilliseconds, fromVersion: last.ringVersion, toVersion: view.ringVersion,
            plan: RingPlan.compute(
                current: last.ringMembers.map(NodeID.init), adding: adding, removing: removing,
                replicationFactor: view.replicationFactor, virtualNodes: view.virtualNodes))
        var words: [String] = []
        if !adding.isEmpty { words.append("+" + adding.map(\.rawValue).joined(separator: ", +")) }
        if !removing.isEmpty { words.append("-" + removing.map(\.rawValue).joined(separator: ", -")) }
        let event = ClusterEventLog.Event(
            sequence: nextRingEvent, unixMilliseconds: unixMilliseconds, member: "ring",
            what: "changed: \(words.joined(separator: " ")) (\(view.ringMembers.count) owners)")
        nextRingEvent += 1
        ringEvents.append(event)
        if ringEvents.count > 50 { ringEvents.removeFirst(ringEvents.count - 50) }
        return event
    }

    // MARK: Documents

    /// A tick's document: the members, the ring, what moves, each node's new point (or why it has
    /// none) and the events since the last tick.
    func tickDocument(
        _ view: LocalView, samples: [String: Sample], failures: [String: String], events: [ClusterEventLog.Event],
        unixMilliseconds: Int64, intervalMilliseconds: Int
    ) -> [String: Any] {
        var nodes: [String: Any] = [:]
        for (node, sample) in samples { nodes[node] = Self.document(sample) }
        for (node, failure) in failures { nodes[node] = ["error": failure] }
        return [
            "time": unixMilliseconds, "interval_ms": intervalMilliseconds, "me": view.me,
            "members": view.members.map(Self.document), "ring": Self.ringDocument(view),
            "moves": moves.map { Self.document($0, samples: samples) } ?? NSNull(),
            "leaving": view.leavingKeys.map { ["keys_to_hand_off": $0] } ?? NSNull(),
            "nodes": nodes, "events": events.map(Self.document),
        ]
    }

    /// What a page just connected gets first: the last tick's document with every point kept and
    /// every event still known.
    func snapshotDocument(tick: [String: Any], events: [ClusterEventLog.Event]) -> [String: Any] {
        var document = tick
        var history: [String: Any] = [:]
        for (node, points) in self.history { history[node] = points.map(Self.document) }
        document["history"] = history
        document["events"] = events.map(Self.document)
        return document
    }

    static func document(_ member: Member) -> [String: Any] {
        [
            "id": member.id, "address": member.address, "client_address": member.clientAddress,
            "status": member.status, "incarnation": member.incarnation,
            "last_contact_seconds": member.lastContactSeconds ?? NSNull(), "ring_share": member.ringShare,
        ]
    }

    static func ringDocument(_ view: LocalView) -> [String: Any] {
        [
            "version": CacheNode.hexadecimal(view.ringVersion), "members": view.ringMembers,
            "sectors": view.sectors, "replication_factor": view.replicationFactor,
        ]
    }

    static func document(_ event: ClusterEventLog.Event) -> [String: Any] {
        ["sequence": event.sequence, "time": event.unixMilliseconds, "member": event.member, "what": event.what]
    }

    private static func rounded(_ value: Double, _ digits: Double = 1000) -> Double {
        (value * digits).rounded() / digits
    }

    static func document(_ sample: Sample) -> [String: Any] {
        let figures = sample.figures
        return [
            "time": sample.unixMilliseconds,
            "ops": [
                "get": rounded(sample.getsPerSecond), "put": rounded(sample.putsPerSecond),
                "delete": rounded(sample.deletesPerSecond),
            ],
            "hit_ratio": sample.hitRatio.map { rounded($0, 10_000) } ?? NSNull(),
            "p50_ms": sample.p50Seconds.map { rounded($0 * 1000) } ?? NSNull(),
            "p99_ms": sample.p99Seconds.map { rounded($0 * 1000) } ?? NSNull(),
            "evictions": rounded(sample.evictionsPerSecond), "unavailable": rounded(sample.unavailablePerSecond),
            "repairs": rounded(sample.repairsPerSecond), "entries": figures.entries,
            "memory_bytes": figures.memoryBytes ?? NSNull(), "memory_limit_bytes": figures.memoryLimitBytes ?? NSNull(),
            "handoff_backlog": figures.handoffBacklog, "tombstone_backlog": figures.tombstoneBacklog,
            "wal": figures.wal, "wal_bytes": figures.walBytes ?? NSNull(), "status": figures.status,
        ]
    }

    /// The moves of the last ring change; `active` while some node still holds keys to hand off.
    static func document(_ moves: Moves, samples: [String: Sample]) -> [String: Any] {
        let backlog = samples.values.reduce(0) { $0 + $1.figures.handoffBacklog }
        return [
            "time": moves.unixMilliseconds, "from_version": CacheNode.hexadecimal(moves.fromVersion),
            "to_version": CacheNode.hexadecimal(moves.toVersion), "moved_share": rounded(moves.plan.moved, 10_000),
            "handoff_backlog": backlog, "active": backlog > 0,
            "members": moves.plan.members.map { member in
                [
                    "id": member.id.rawValue, "share_before": rounded(member.before, 10_000),
                    "share_after": rounded(member.after, 10_000), "receives": rounded(member.receives, 10_000),
                    "gives_up": rounded(member.givesUp, 10_000),
                ] as [String: Any]
            },
        ]
    }

    /// One server-sent event: `event: name`, the document as one `data:` line, a blank line.
    static func serverSentEvent(_ name: String, _ document: [String: Any]) -> [UInt8] {
        // JSON never holds a raw newline, so one `data:` line carries it whole.
        Array("event: \(name)\ndata: ".utf8) + CacheNode.serialize(document) + Array("\n\n".utf8)
    }
}
