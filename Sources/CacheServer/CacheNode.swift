import CacheCore
import Foundation
import Logging
import NIOCore
import Synchronization

/// One node's state as the driver holds it: the CacheCore store behind a lock, the clock that feeds
/// it, and the node's lifecycle.
///
/// Every decision about entries is the store's; this type only supplies time, serialises access
/// and counts. The lock is held for a dictionary lookup and an array retain, never for I/O.
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

    let storage: SharedStorage
    private let persistenceBox = Mutex<Persistence?>(nil)
    private let seed: UInt64
    private let lifecycleState = Atomic<UInt8>(Lifecycle.starting.rawValue)
    /// The port actually listened on (differs from the configured one when that was 0).
    private let boundPort = Atomic<Int>(0)

    /// Creates a node with an empty store; `seed` decides its sampling (random by default).
    public init(configuration: NodeConfiguration, logger: Logger, seed: UInt64 = .random(in: .min ... .max)) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = NodeMetrics()
        self.clock = NodeClock()
        self.seed = seed
        self.storage = SharedStorage(
            NodeStorage(
                store: CacheStore(limits: configuration.storeLimits, policy: SampledLRU(), seed: seed), log: nil))
    }

    /// With `WAL_DIR` set: recovers the store from the log directory and starts logging. Until it
    /// returns the node is `starting`; it logs what recovery found and dropped.
    public func restore() async throws {
        guard let path = configuration.walDirectory else { return }
        let started = ContinuousClock.now
        let persistence = try await Persistence.open(
            path: path, configuration: configuration, storage: storage, seed: seed, now: clock.now(), logger: logger)
        persistenceBox.withLock { $0 = persistence }
        let report = persistence.report
        logger.info(
            "recovered",
            metadata: [
                "wal_dir": "\(path)", "sync": "\(configuration.syncPolicy)",
                "snapshot_sequence": "\(report.snapshotSequence.map(String.init) ?? "none")",
                "snapshot_entries": "\(report.snapshotEntries)", "replayed_records": "\(report.replayedRecords)",
                "expired_dropped": "\(report.expiredDropped)", "dropped_bytes": "\(report.droppedBytes)",
                "last_sequence": "\(report.lastSequence)", "entries": "\(statistics.entries)",
                "seconds": "\(started.duration(to: .now))",
            ])
        for problem in report.problems {
            logger.warning("recovery dropped data", metadata: ["problem": "\(problem)"])
        }
    }

    /// Stops logging after syncing what was written.
    public func closePersistence() async {
        let persistence = persistenceBox.withLock { box in
            defer { box = nil }
            return box
        }
        await persistence?.shutdown()
    }

    private var persistence: Persistence? { persistenceBox.withLock { $0 } }

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

    /// Reads a key.
    @inline(__always)
    public func get(_ key: [UInt8]) -> CacheStore.GetResult {
        let now = clock.now()
        return storage.mutex.withLock { $0.store.get(CacheKey(bytes: key), now: now) }
    }

    /// How a write ends.
    public enum WriteAnswer: Sendable {
        /// Decided now: the store's answer, or why it was refused.
        case now(Result<WriteOutcome, WriteRefusal>)
        /// Applied; the answer may go out once `durable` succeeds (it fails if the disk does).
        case afterLogging(durable: EventLoopFuture<Void>, outcome: WriteOutcome)
    }

    /// What a write did.
    public enum WriteOutcome: Sendable {
        case stored, deleted, notFound
    }

    /// Why a write was refused.
    public enum WriteRefusal: Error, Sendable {
        /// The request broke a limit (400 or 413).
        case invalid(RequestError)
        /// The disk failed; nothing was changed (503).
        case unavailable(String)
    }

    /// Stores a decoded PUT body, applying the default TTL when it gave none.
    public func put(_ request: PutRequest, on eventLoop: any EventLoop) -> WriteAnswer {
        let now = clock.now()
        let ttl = request.ttlSeconds ?? configuration.defaultTTLSeconds
        let expiresAt = ttl == 0 ? nil : now.advanced(bySeconds: ttl)
        let key = CacheKey(bytes: request.key)
        let writer = persistence?.writer
        return storage.mutex.withLock { storage in
            let outcome = storage.put(key, value: request.value, expiresAt: expiresAt, now: now)
            return Self.answer(outcome, .stored, storage: &storage, writer: writer, eventLoop: eventLoop)
        }
    }

    /// Deletes a key.
    public func delete(_ key: [UInt8], on eventLoop: any EventLoop) -> WriteAnswer {
        let now = clock.now()
        let writer = persistence?.writer
        return storage.mutex.withLock { storage in
            let (result, outcome) = storage.delete(CacheKey(bytes: key), now: now)
            return Self.answer(
                outcome, result == .deleted ? .deleted : .notFound, storage: &storage, writer: writer,
                eventLoop: eventLoop)
        }
    }

    /// Turns a storage outcome into an answer; called under the storage lock, so that records reach
    /// the log in sequence order.
    private static func answer(
        _ outcome: NodeStorage.WriteOutcome, _ success: WriteOutcome, storage: inout NodeStorage, writer: LogWriter?,
        eventLoop: any EventLoop
    ) -> WriteAnswer {
        switch outcome {
        case .rejected(let error):
            return .now(.failure(.invalid(error)))
        case .unavailable(let reason):
            return .now(.failure(.unavailable(reason)))
        case .applied(nil):
            return .now(.success(success))
        case .applied(let append?):
            // `restore()` installs the log and publishes its writer before the node leaves `starting`,
            // and data routes are refused until then; so a logged write always finds the writer.
            guard let writer else { preconditionFailure("a log record without a log writer") }
            if case .failure(let error) = writer.write(append.bytes, sequence: append.sequence, log: &storage.log!) {
                return .now(.failure(.unavailable(error.description)))
            }
            if storage.log!.mayAcknowledge(append.sequence) { return .now(.success(success)) }
            let durable = eventLoop.makePromise(of: Void.self)
            writer.awaitAcknowledgement(of: append.sequence, promise: durable)
            return .afterLogging(durable: durable.futureResult, outcome: success)
        }
    }

    /// Periodic upkeep the driver runs on a timer: active expiry, and the allocator's figure handed
    /// to the store so the memory limit is checked against real usage.
    public func runMaintenance() {
        let now = clock.now()
        let allocated = Jemalloc.allocatedBytes()
        storage.mutex.withLock { storage in
            storage.store.sweepExpired(now: now)
            if let allocated { storage.store.allocatorReported(allocatedBytes: allocated) }
        }
        persistence?.compactIfDue(now: now)
    }

    /// A consistent copy of the store's counters.
    public var statistics: StoreStatistics { storage.mutex.withLock { $0.store.statistics } }

    /// Why writes are refused, while the disk is failing.
    public var diskFailure: String? { storage.mutex.withLock { $0.log?.failure } }

    /// The JSON document `/stats` answers with.
    public func statsDocument() -> [UInt8] {
        let statistics = self.statistics
        let allocated = Jemalloc.allocatedBytes()
        let limits = configuration.storeLimits
        let document: [String: Any] = [
            "node_id": configuration.nodeID,
            "status": "\(lifecycle)",
            "uptime_seconds": Double(clock.elapsed.components.seconds)
                + Double(clock.elapsed.components.attoseconds) / 1e18,
            "entries": statistics.entries,
            "bytes": [
                "estimated": statistics.estimatedBytes,
                "jemalloc_allocated": allocated as Any? ?? NSNull(),
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
            "persistence": persistenceDocument(),
        ]
        return Self.serialize(document)
    }

    private func persistenceDocument() -> Any {
        guard let persistence else { return configuration.walDirectory == nil ? "disabled" : "starting" }
        let log = storage.mutex.withLock { $0.log! }
        let report = persistence.report
        return [
            "wal_dir": persistence.directory.path,
            "sync": "\(configuration.syncPolicy)",
            "state": log.failure.map { "failed: \($0)" } ?? "ok",
            "last_sequence": log.lastSequence,
            "written_sequence": log.writtenSequence,
            "synced_sequence": log.syncedSequence,
            "log_bytes": log.logBytes,
            "compactions": persistence.compactions,
            "recovery": [
                "snapshot_sequence": report.snapshotSequence as Any? ?? NSNull(),
                "snapshot_entries": report.snapshotEntries,
                "replayed_records": report.replayedRecords,
                "expired_dropped": report.expiredDropped,
                "dropped_bytes": report.droppedBytes,
                "problems": report.problems,
            ],
        ] as [String: Any]
    }

    /// The JSON document the cluster-status endpoint answers with. Until clustering lands the node
    /// is a cluster of one.
    public func clusterDocument() -> [UInt8] {
        let document: [String: Any] = [
            "node_id": configuration.nodeID,
            "replication_factor": configuration.replicationFactor,
            "effective_replication_factor": 1,
            "members": [
                ["id": configuration.nodeID, "address": "\(configuration.host):\(port)", "status": "alive"]
            ],
            "seeds": configuration.seeds.map(\.description),
        ]
        return Self.serialize(document)
    }

    /// The `/metrics` exposition.
    public func metricsExposition() -> [UInt8] {
        metrics.exposition(
            statistics: statistics, allocated: Jemalloc.allocatedBytes(),
            memoryLimit: configuration.maxMemoryBytes, uptime: clock.elapsed)
    }

    static func serialize(_ document: [String: Any]) -> [UInt8] {
        // Only dictionaries of strings, numbers and NSNull are passed in, so this cannot fail.
        let data = try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        return Array(data)
    }
}
