/// One node's key-value store: a state machine over put, get, delete, expiry and eviction.
///
/// The store reads no clock and no global randomness: each event carries `now`, and sampling
/// draws from a generator seeded at creation, so the same events give the same state bit for bit.
/// Expiry is lazy on access plus ``sweepExpired(now:sampleSize:maxRounds:)``, which the driver
/// calls on a timer (Redis's active expiry). Over the entry or memory limit a put evicts through
/// the `Policy` rather than refusing.
public struct Store<Policy: EvictionPolicy>: Sendable {
    /// Bytes charged per entry on top of its key and value: the table slot, the index slot and the
    /// two array headers, rounded up. An estimate; the allocator's own figure corrects it.
    public static var entryOverheadBytes: Int { 112 }

    /// The bounds this store keeps to.
    public let limits: StoreLimits
    /// Counters since the store was created.
    public private(set) var statistics = StoreStatistics()

    private var table = EntryTable()
    private var policy: Policy
    private var random: SplitMix64
    /// A logical clock advanced by every read and write; entries remember it for LRU.
    private var accessClock: UInt64 = 0
    /// What the allocator reported beyond the store's own estimate at the last report: the rest of
    /// the process plus the estimate's error. Added to the estimate when checking the memory limit.
    private var allocatorOverhead = 0

    /// Creates an empty store.
    public init(limits: StoreLimits, policy: Policy, seed: UInt64) {
        self.limits = limits
        self.policy = policy
        self.random = SplitMix64(seed: seed)
    }

    /// What the memory limit is checked against: the estimate plus the allocator's correction.
    public var memoryUsage: Int { statistics.estimatedBytes + allocatorOverhead }

    /// The result of a read.
    public enum GetResult: Equatable, Sendable {
        /// A live entry: its value and expiry.
        case hit(value: [UInt8], expiresAt: Instant?)
        /// No live entry under the key.
        case miss
    }

    /// The result of a write.
    public enum PutResult: Equatable, Sendable {
        /// The entry is stored; `evicted` others were removed to make room.
        case stored(evicted: Int)
        /// The entry was refused and the store is unchanged.
        case rejected(PutRejection)
    }

    /// Why a write was refused.
    public enum PutRejection: Error, Equatable, Sendable {
        /// The key has no bytes.
        case emptyKey
        /// The key is longer than ``StoreLimits/maxKeyBytes``.
        case keyTooLarge(bytes: Int, limit: Int)
        /// The value is longer than ``StoreLimits/maxValueBytes``.
        case valueTooLarge(bytes: Int, limit: Int)
        /// The entry alone would exceed the memory limit, even with every other entry evicted.
        case exceedsMemoryLimit(bytes: Int, limit: Int)
    }

    /// The result of a delete.
    public enum DeleteResult: Equatable, Sendable {
        /// A live entry was removed.
        case deleted
        /// There was no live entry under the key.
        case notFound
    }

    /// Reads `key` at `now`. An expired entry is removed and counts as a miss and an expiration.
    public mutating func get(_ key: CacheKey, now: Instant) -> GetResult {
        statistics.gets &+= 1
        guard let position = table.position(of: key) else {
            statistics.misses &+= 1
            return .miss
        }
        if table[position].isExpired(at: now) {
            removeEntry(at: position)
            statistics.expirations &+= 1
            statistics.misses &+= 1
            return .miss
        }
        statistics.hits &+= 1
        accessClock &+= 1
        table[position].lastAccess = accessClock
        policy.recordAccess(to: key)
        let entry = table[position]
        return .hit(value: entry.value, expiresAt: entry.expiresAt)
    }

    /// Whether `value` may be stored under `key`, checked before any state changes; the HTTP edge
    /// uses it to answer precisely before touching the store.
    public func validate(key: CacheKey, valueCount: Int) -> PutRejection? {
        if key.bytes.isEmpty { return .emptyKey }
        if key.bytes.count > limits.maxKeyBytes {
            return .keyTooLarge(bytes: key.bytes.count, limit: limits.maxKeyBytes)
        }
        if valueCount > limits.maxValueBytes {
            return .valueTooLarge(bytes: valueCount, limit: limits.maxValueBytes)
        }
        if let maxMemory = limits.maxMemoryBytes {
            let cost = Self.cost(key: key, valueCount: valueCount)
            if cost + max(0, allocatorOverhead) > maxMemory {
                return .exceedsMemoryLimit(bytes: cost, limit: maxMemory)
            }
        }
        return nil
    }

    /// Stores `value` under `key`, replacing any previous entry, expiring at `expiresAt` (`nil`: never).
    ///
    /// When the entry or memory limit would be passed, other entries are evicted first.
    public mutating func put(_ key: CacheKey, value: [UInt8], expiresAt: Instant?, now: Instant) -> PutResult {
        if let rejection = validate(key: key, valueCount: value.count) {
            return .rejected(rejection)
        }
        if let position = table.position(of: key) {
            // A replacement is a removal plus an insertion; the old entry is not an eviction.
            removeEntry(at: position)
        }
        let cost = Self.cost(key: key, valueCount: value.count)
        let evicted = evict(toFit: cost)
        accessClock &+= 1
        _ = table.append(
            StoredEntry(key: key, value: value, expiresAt: expiresAt, lastAccess: accessClock, cost: cost)
        )
        policy.recordAccess(to: key)
        statistics.entries = table.count
        statistics.estimatedBytes += cost
        statistics.puts &+= 1
        return .stored(evicted: evicted)
    }

    /// Removes `key`. An entry that had already expired counts as an expiration and as not found.
    public mutating func delete(_ key: CacheKey, now: Instant) -> DeleteResult {
        statistics.deletes &+= 1
        guard let position = table.position(of: key) else { return .notFound }
        let expired = table[position].isExpired(at: now)
        removeEntry(at: position)
        if expired {
            statistics.expirations &+= 1
            return .notFound
        }
        return .deleted
    }

    /// Active expiry, as Redis does it: test `sampleSize` random entries and remove the expired ones;
    /// go on for another round while at least a quarter of a sample had expired, up to `maxRounds`.
    ///
    /// Bounded work per call, yet memory held by expired keys is reclaimed without a full scan.
    /// Returns how many entries expired.
    @discardableResult
    public mutating func sweepExpired(now: Instant, sampleSize: Int = 20, maxRounds: Int = 16) -> Int {
        var expiredTotal = 0
        for _ in 0..<maxRounds {
            let samples = min(sampleSize, table.count)
            if samples == 0 { break }
            var expired = 0
            for _ in 0..<samples where !table.isEmpty {
                let position = table.randomPosition(using: &random)
                if table[position].isExpired(at: now) {
                    removeEntry(at: position)
                    expired += 1
                }
            }
            expiredTotal += expired
            if expired * 4 < samples { break }
        }
        statistics.expirations &+= UInt64(expiredTotal)
        return expiredTotal
    }

    /// Takes in the allocator's count of allocated bytes for the whole process, so the memory limit
    /// is checked against what is really in use, and evicts if that is now over the limit.
    ///
    /// Returns how many entries were evicted.
    @discardableResult
    public mutating func allocatorReported(allocatedBytes: Int) -> Int {
        allocatorOverhead = allocatedBytes - statistics.estimatedBytes
        guard let maxMemory = limits.maxMemoryBytes else { return 0 }
        var evicted = 0
        while memoryUsage > maxMemory, !table.isEmpty {
            evictOne()
            evicted += 1
        }
        return evicted
    }

    /// Zeroes the operation counters (not the entry and byte counts): recovery replays the log
    /// through `put` and `delete`, which are not operations clients made.
    public mutating func resetCounters() {
        let entries = statistics.entries
        let bytes = statistics.estimatedBytes
        statistics = StoreStatistics()
        statistics.entries = entries
        statistics.estimatedBytes = bytes
    }

    /// The entries in the store's deterministic table order (tests, and later snapshots).
    public var entries: [StoredEntry] { table.orderedEntries }

    // MARK: - Private

    private static func cost(key: CacheKey, valueCount: Int) -> Int {
        key.bytes.count + valueCount + entryOverheadBytes
    }

    /// Evicts until one more entry of `cost` bytes fits both limits; returns how many went.
    private mutating func evict(toFit cost: Int) -> Int {
        var evicted = 0
        while !table.isEmpty {
            let overCount = limits.maxEntries.map { table.count + 1 > $0 } ?? false
            let overMemory = limits.maxMemoryBytes.map { memoryUsage + cost > $0 } ?? false
            guard overCount || overMemory else { break }
            evictOne()
            evicted += 1
        }
        return evicted
    }

    private mutating func evictOne() {
        let position = policy.victim(in: table, using: &random)
        removeEntry(at: position)
        statistics.evictions &+= 1
    }

    private mutating func removeEntry(at position: Int) {
        let removed = table.remove(at: position)
        statistics.entries = table.count
        statistics.estimatedBytes -= removed.cost
    }
}

/// The store the node runs: sampled LRU eviction.
public typealias CacheStore = Store<SampledLRU>
