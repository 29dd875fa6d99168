import CacheCore
import Foundation
import Logging
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

    private let store: Mutex<CacheStore>
    private let lifecycleState = Atomic<UInt8>(Lifecycle.starting.rawValue)
    /// The port actually listened on (differs from the configured one when that was 0).
    private let boundPort = Atomic<Int>(0)

    /// Creates a node with an empty store; `seed` decides its sampling (random by default).
    public init(configuration: NodeConfiguration, logger: Logger, seed: UInt64 = .random(in: .min ... .max)) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = NodeMetrics()
        self.clock = NodeClock()
        self.store = Mutex(CacheStore(limits: configuration.storeLimits, policy: SampledLRU(), seed: seed))
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

    /// Reads a key.
    @inline(__always)
    public func get(_ key: [UInt8]) -> CacheStore.GetResult {
        let now = clock.now()
        return store.withLock { $0.get(CacheKey(bytes: key), now: now) }
    }

    /// Stores a decoded PUT body, applying the default TTL when it gave none.
    public func put(_ request: PutRequest) -> Result<Void, RequestError> {
        let now = clock.now()
        let ttl = request.ttlSeconds ?? configuration.defaultTTLSeconds
        let expiresAt = ttl == 0 ? nil : now.advanced(bySeconds: ttl)
        let key = CacheKey(bytes: request.key)
        switch store.withLock({ $0.put(key, value: request.value, expiresAt: expiresAt, now: now) }) {
        case .stored: return .success(())
        case .rejected(let rejection): return .failure(rejection.requestError)
        }
    }

    /// Deletes a key.
    public func delete(_ key: [UInt8]) -> CacheStore.DeleteResult {
        let now = clock.now()
        return store.withLock { $0.delete(CacheKey(bytes: key), now: now) }
    }

    /// Periodic upkeep the driver runs on a timer: active expiry, and the allocator's figure handed
    /// to the store so the memory limit is checked against real usage.
    public func runMaintenance() {
        let now = clock.now()
        let allocated = Jemalloc.allocatedBytes()
        store.withLock { store in
            store.sweepExpired(now: now)
            if let allocated { store.allocatorReported(allocatedBytes: allocated) }
        }
    }

    /// A consistent copy of the store's counters.
    public var statistics: StoreStatistics { store.withLock { $0.statistics } }

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
            "persistence": configuration.walDirectory == nil ? "disabled" : "configured",
        ]
        return Self.serialize(document)
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
