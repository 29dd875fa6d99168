import CacheCore
import Foundation
import Logging
import NIOCore
import Synchronization

/// One node as the server runs it: the node state machine behind its driver, the clock that feeds
/// it, its metrics, and its lifecycle (what `/health` reports).
///
/// Every decision about entries is `ClusterNode`'s; this type supplies time, answers the status
/// routes from the node's loop, and keeps the lifecycle.
public final class CacheNode: Sendable {
    /// Where the node is in its life, as `/health` reports it.
    public enum Lifecycle: UInt8, Sendable {
        /// Loading state; not yet serving (503).
        case starting = 0
        /// Serving requests (200).
        case serving = 1
        /// Shutting down: finishing what is in flight, refusing new work (503).
        case draining = 2
    }

    public let configuration: NodeConfiguration
    public let metrics: NodeMetrics
    public let clock: NodeClock
    let logger: Logger
    let driver: NodeDriver
    private let lifecycleState = Atomic<UInt8>(Lifecycle.starting.rawValue)
    /// The port actually listened on (differs from the configured one when that was 0).
    private let boundPort = Atomic<Int>(0)

    /// A node whose state machine lives on `loop`; `seed` decides its sampling (random by default).
    public init(
        configuration: NodeConfiguration, logger: Logger, loop: any EventLoop, seed: UInt64 = .random(in: .min ... .max)
    ) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = NodeMetrics()
        self.clock = NodeClock()
        self.driver = NodeDriver(
            configuration: configuration, clock: clock, metrics: metrics, logger: logger, loop: loop, seed: seed)
    }

    /// Recovers from `WAL_DIR` (when set) and starts the node. Until it returns the node is `starting`;
    /// it logs what recovery found and dropped.
    public func start() async throws {
        let started = ContinuousClock.now
        guard let outcome = try await driver.start() else { return }
        let report = outcome.report
        logger.info(
            "recovered",
            metadata: [
                "wal_dir": "\(configuration.walDirectory ?? "")", "sync": "\(configuration.syncPolicy)",
                "snapshot_sequence": "\(report.snapshotSequence.map(String.init) ?? "none")",
                "snapshot_entries": "\(report.snapshotEntries)", "replayed_records": "\(report.replayedRecords)",
                "migrated_records": "\(report.legacyRecords)", "expired_dropped": "\(report.expiredDropped)",
                "dropped_bytes": "\(report.droppedBytes)", "last_sequence": "\(report.lastSequence)",
                "entries": "\(outcome.store.statistics.liveEntries)", "seconds": "\(started.duration(to: .now))",
            ])
        for problem in report.problems {
            logger.warning("recovery dropped data", metadata: ["problem": "\(problem)"])
        }
    }

    /// Stops the node's timers and syncs and closes its log.
    public func stop() async {
        await driver.shutdown()
    }

    /// The node's current lifecycle state.
    public var lifecycle: Lifecycle {
        Lifecycle(rawValue: lifecycleState.load(ordering: .acquiring)) ?? .starting
    }

    /// Moves the node to `state`.
    public func transition(to state: Lifecycle) {
        lifecycleState.store(state.rawValue, ordering: .releasing)
        logger.info("lifecycle", metadata: ["state": "\(state)"])
    }

    /// Records the port the server is listening on.
    public func didBind(port: Int) {
        boundPort.store(port, ordering: .releasing)
    }

    /// The port the server listens on, once bound.
    public var port: Int { boundPort.load(ordering: .acquiring) }

    /// The node's counters (tests and tools).
    public func statistics() async throws -> StoreStatistics {
        try await driver.inspect(from: driver.loop) { $0.node?.statistics ?? StoreStatistics() }.get()
    }

    // MARK: Status documents, built on the node's loop

    /// What `/health` answers: the status word and, when the disk failed, why writes are refused.
    func health(from loop: any EventLoop) -> EventLoopFuture<(status: String, reason: String?)> {
        let lifecycle = self.lifecycle
        return driver.inspect(from: loop) { state in
            let failure = state.node?.log?.failure
            let status = lifecycle != .serving ? "\(lifecycle)" : failure == nil ? "ok" : "degraded"
            return (status, failure.map { "writes refused: \($0)" })
        }
    }

    /// The JSON document `/stats` answers with.
    func statsDocument(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let lifecycle = self.lifecycle
        let configuration = self.configuration
        let uptime = clock.elapsed
        return driver.inspect(from: loop) { state in
            let statistics = state.node?.statistics ?? StoreStatistics()
            let limits = configuration.storeLimits
            let document: [String: Any] = [
                "node_id": configuration.nodeID,
                "status": "\(lifecycle)",
                "uptime_seconds": Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
                "entries": statistics.entries,
                "tombstones": statistics.tombstones,
                "bytes": [
                    "estimated": statistics.estimatedBytes,
                    "jemalloc_allocated": Jemalloc.allocatedBytes() as Any? ?? NSNull(),
                    "jemalloc_resident": Jemalloc.residentBytes() as Any? ?? NSNull(),
                ],
                "limits": [
                    "max_entries": limits.maxEntries as Any? ?? NSNull(),
                    "max_memory_bytes": limits.maxMemoryBytes as Any? ?? NSNull(),
                    "max_key_bytes": limits.maxKeyBytes,
                    "max_value_bytes": limits.maxValueBytes,
                ],
                "hits": statistics.hits,
                "misses": statistics.misses,
                "evictions": statistics.evictions,
                "expirations": statistics.expirations,
                "ops": ["get": statistics.gets, "put": statistics.puts, "delete": statistics.deletes],
                "persistence": Self.persistenceDocument(state),
            ]
            return Self.serialize(document)
        }
    }

    private static func persistenceDocument(_ state: DriverState) -> Any {
        guard let path = state.configuration.walDirectory else { return "disabled" }
        guard let log = state.node?.log, let report = state.recovery else { return "starting" }
        return [
            "wal_dir": path,
            "sync": "\(state.configuration.syncPolicy)",
            "state": log.failure.map { "failed: \($0)" } ?? "ok",
            "last_sequence": log.lastSequence,
            "written_sequence": log.writtenSequence,
            "synced_sequence": log.syncedSequence,
            "log_bytes": log.logBytes,
            "compactions": state.files?.compactions ?? 0,
            "recovery": [
                "snapshot_sequence": report.snapshotSequence as Any? ?? NSNull(),
                "snapshot_entries": report.snapshotEntries,
                "replayed_records": report.replayedRecords,
                "migrated_records": report.legacyRecords,
                "expired_dropped": report.expiredDropped,
                "dropped_bytes": report.droppedBytes,
                "problems": report.problems,
            ],
        ] as [String: Any]
    }

    /// The JSON document the cluster-status endpoint answers with.
    func clusterDocument(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let configuration = self.configuration
        let port = self.port
        return driver.inspect(from: loop) { state in
            let members: [[String: Any]] =
                state.node?.membership.view.map { update in
                    ["id": update.id.rawValue, "address": update.address, "status": "\(update.status)"]
                } ?? []
            let document: [String: Any] = [
                "node_id": configuration.nodeID,
                "http_address": "\(configuration.host):\(port)",
                "replication_factor": configuration.replicationFactor,
                "effective_replication_factor": min(
                    configuration.replicationFactor, state.node?.ring.members.count ?? 1),
                "members": members,
                "seeds": configuration.seeds.map(\.description),
            ]
            return Self.serialize(document)
        }
    }

    /// The `/metrics` exposition.
    func metricsExposition(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let metrics = self.metrics
        let memoryLimit = configuration.maxMemoryBytes
        let uptime = clock.elapsed
        return driver.inspect(from: loop) { state in
            metrics.exposition(
                statistics: state.node?.statistics ?? StoreStatistics(), allocated: Jemalloc.allocatedBytes(),
                memoryLimit: memoryLimit, uptime: uptime)
        }
    }

    static func serialize(_ document: [String: Any]) -> [UInt8] {
        // Only dictionaries of strings, numbers and NSNull are passed in, so this cannot fail.
        let data = try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        return Array(data)
    }
}
