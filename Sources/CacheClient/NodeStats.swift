/// One node's counters: `GET /stats` (the fields a program acts on; `rawJSON("/stats")` has all).
public struct NodeStats: Sendable, Decodable, Equatable {
    public struct Bytes: Sendable, Decodable, Equatable {
        /// The store's own estimate of what its entries use.
        public var estimated: Int
        /// jemalloc's allocated bytes (nil when the node runs without jemalloc).
        public var jemallocAllocated: Int?
        /// jemalloc's resident bytes.
        public var jemallocResident: Int?

        enum CodingKeys: String, CodingKey {
            case estimated, jemallocAllocated = "jemalloc_allocated", jemallocResident = "jemalloc_resident"
        }
    }

    public struct Limits: Sendable, Decodable, Equatable {
        public var maximumEntries: Int?
        public var maximumMemoryBytes: Int?
        public var maximumKeyBytes: Int
        public var maximumValueBytes: Int

        enum CodingKeys: String, CodingKey {
            case maximumEntries = "max_entries"
            case maximumMemoryBytes = "max_memory_bytes"
            case maximumKeyBytes = "max_key_bytes"
            case maximumValueBytes = "max_value_bytes"
        }
    }

    /// Client calls this node coordinated.
    public struct Operations: Sendable, Decodable, Equatable {
        public var get: Int
        public var put: Int
        public var delete: Int
    }

    public var nodeID: String
    /// `serving`, `starting`, …
    public var status: String
    public var uptimeSeconds: Double
    public var entries: Int
    public var tombstones: Int
    public var bytes: Bytes
    public var limits: Limits
    public var hits: Int
    public var misses: Int
    public var evictions: Int
    public var expirations: Int
    public var ops: Operations

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", status, uptimeSeconds = "uptime_seconds", entries, tombstones, bytes, limits
        case hits, misses, evictions, expirations, ops
    }
}

/// A node's `GET /health`: `ok`, `degraded` (writes refused after a disk failure), `starting`, …
public struct NodeHealthStatus: Sendable, Decodable, Equatable {
    public var status: String
    /// Why, when not `ok`.
    public var reason: String?
    public var nodeID: String

    enum CodingKeys: String, CodingKey {
        case status, reason, nodeID = "node_id"
    }
}
