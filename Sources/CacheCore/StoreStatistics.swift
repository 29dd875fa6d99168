/// Counters a store keeps about itself; cheap to copy, read by `/stats` and `/metrics`.
public struct StoreStatistics: Sendable, Equatable {
    /// Live entries, including expired ones not yet reclaimed.
    public var entries = 0
    /// The store's own estimate of the bytes its entries use (keys, values and bookkeeping).
    public var estimatedBytes = 0
    /// `get` calls.
    public var gets: UInt64 = 0
    /// Accepted `put` calls.
    public var puts: UInt64 = 0
    /// `delete` calls.
    public var deletes: UInt64 = 0
    /// `get` calls that found a live entry.
    public var hits: UInt64 = 0
    /// `get` calls that found nothing, or only an expired entry.
    public var misses: UInt64 = 0
    /// Entries removed to stay within the entry or memory limit.
    public var evictions: UInt64 = 0
    /// Entries removed because their time to live had passed.
    public var expirations: UInt64 = 0

    /// Empty counters.
    public init() {}
}
