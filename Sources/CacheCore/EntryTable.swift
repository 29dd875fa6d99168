/// One entry as the store keeps it.
public struct StoredEntry: Sendable, Equatable {
    /// The entry's key.
    public let key: CacheKey
    /// The entry's value bytes, opaque to the store.
    public var value: [UInt8]
    /// When the entry stops being served; `nil` means it never expires.
    public var expiresAt: Instant?
    /// The store's logical access clock at the last read or write, for recency-based eviction.
    public var lastAccess: UInt64
    /// The bytes this entry is charged against the memory limit.
    public var cost: Int

    /// Whether the entry's time to live has passed at `now`.
    @inline(__always)
    public func isExpired(at now: Instant) -> Bool {
        if let expiresAt { return expiresAt <= now }
        return false
    }
}

/// The entries in a dense array plus a key index, so that a uniformly random entry can be drawn
/// in O(1) for sampled expiry and eviction.
///
/// Removal swaps the last entry into the hole. The index is only ever looked up, never iterated,
/// so the process-seeded order of `Dictionary` cannot reach any output.
public struct EntryTable: Sendable {
    private var entries: [StoredEntry] = []
    private var positions: [CacheKey: Int] = [:]

    /// An empty table.
    public init() {}

    /// How many entries the table holds.
    public var count: Int { entries.count }

    /// Whether the table holds no entry.
    public var isEmpty: Bool { entries.isEmpty }

    /// Where `key` is stored, if it is.
    @inline(__always)
    public func position(of key: CacheKey) -> Int? {
        positions[key]
    }

    /// The entry at `position`.
    public subscript(position: Int) -> StoredEntry {
        get { entries[position] }
        _modify { yield &entries[position] }
    }

    /// Appends an entry whose key is not yet present and returns its position.
    public mutating func append(_ entry: StoredEntry) -> Int {
        precondition(positions[entry.key] == nil, "EntryTable.append: key already present")
        let position = entries.count
        entries.append(entry)
        positions[entry.key] = position
        return position
    }

    /// Removes and returns the entry at `position`; the last entry moves into its place.
    @discardableResult
    public mutating func remove(at position: Int) -> StoredEntry {
        let removed = entries[position]
        let lastPosition = entries.count - 1
        if position != lastPosition {
            entries.swapAt(position, lastPosition)
            positions[entries[position].key] = position
        }
        entries.removeLast()
        positions[removed.key] = nil
        return removed
    }

    /// A uniformly random position; the table must not be empty.
    public func randomPosition(using random: inout SplitMix64) -> Int {
        precondition(!entries.isEmpty, "EntryTable.randomPosition: empty table")
        return Int(random.next(upperBound: UInt64(entries.count)))
    }

    /// The entries in table order, for snapshots and tests; this order is deterministic for a given history.
    public var orderedEntries: [StoredEntry] { entries }
}
