/// What a replica holds for one key: the newest write it has, a value or a tombstone.
public struct VersionedEntry: Equatable, Sendable {
    /// The write's version.
    public var version: Version
    /// The value, or `nil` for a tombstone (the key was deleted).
    public var value: [UInt8]?
    /// When the value expires (`nil`: never). Set once by the write's coordinator and carried with
    /// the version, so every replica expires the key at the same instant.
    public var expiresAt: Instant?

    /// Creates an entry.
    public init(version: Version, value: [UInt8]?, expiresAt: Instant?) {
        self.version = version
        self.value = value
        self.expiresAt = expiresAt
    }

    /// When the entry stops being live: a tombstone at its version's time, a value at its expiry
    /// (`distantFuture` for a value that never expires).
    public var deadSince: Instant {
        value == nil ? Instant(nanosecondsSinceEpoch: version.wall) : expiresAt ?? .distantFuture
    }

    /// Whether the entry is a value that has not expired at `now`.
    public func isLive(at now: Instant) -> Bool {
        guard value != nil else { return false }
        return expiresAt.map { now < $0 } ?? true
    }
}

/// A replica's versioned entries: a write replaces what a key holds only when its version is
/// greater, so replicas that see the same writes in any order, any number of times, end equal.
///
/// Deletes and expiries stay as tombstones carrying their version, so an older write arriving late
/// from a stale replica can never bring a deleted key back.
public struct ReplicaStore: Sendable {
    struct Slot: Sendable {
        var entry: VersionedEntry
        /// The log record that made this entry, or 0 when it was loaded from disk.
        var sequence: UInt64
    }

    private var slots: [CacheKey: Slot] = [:]
    /// Bytes of keys and values held, tombstones included.
    public private(set) var bytes = 0

    /// An empty store.
    public init() {}

    /// The outcome of applying a write.
    public enum ApplyResult: Equatable, Sendable {
        /// The write was newer and replaced what the key held.
        case applied(previousWasLive: Bool)
        /// The key already holds this exact version.
        case duplicate
        /// The key holds a newer version; the write changed nothing.
        case stale(current: Version)
    }

    /// How many keys are held, tombstones included.
    public var count: Int { slots.count }

    /// What `key` holds.
    public func entry(for key: CacheKey) -> VersionedEntry? { slots[key]?.entry }

    /// The log sequence of the record that made `key`'s current entry (0 when loaded from disk).
    public func sequence(of key: CacheKey) -> UInt64 { slots[key]?.sequence ?? 0 }

    /// Whether `entry` would replace what `key` holds.
    public func check(_ key: CacheKey, _ entry: VersionedEntry) -> ApplyResult {
        guard let current = slots[key]?.entry else { return .applied(previousWasLive: false) }
        if entry.version > current.version { return .applied(previousWasLive: current.value != nil) }
        if entry.version == current.version { return .duplicate }
        return .stale(current: current.version)
    }

    /// Applies `entry` to `key` when it is newer than what the key holds. With `unconditionally`
    /// (only ever set by a deliberately injected bug) the version comparison is skipped.
    @discardableResult
    public mutating func apply(
        _ key: CacheKey, _ entry: VersionedEntry, sequence: UInt64, unconditionally: Bool = false
    ) -> ApplyResult {
        let result = check(key, entry)
        if case .applied = result {
            replace(key, entry, sequence: sequence)
        } else if unconditionally, slots[key]?.entry != entry {
            replace(key, entry, sequence: sequence)
        }
        return result
    }

    /// Forgets `key` if it still holds `version` (after handing it off to its owners).
    public mutating func remove(_ key: CacheKey, ifVersion version: Version) {
        guard let slot = slots[key], slot.entry.version == version else { return }
        bytes -= Self.size(key, slot.entry)
        slots[key] = nil
    }

    /// Every key, in byte order (never the dictionary's order, which differs between processes).
    public var sortedKeys: [CacheKey] {
        slots.keys.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
    }

    private mutating func replace(_ key: CacheKey, _ entry: VersionedEntry, sequence: UInt64) {
        if let old = slots[key]?.entry { bytes -= Self.size(key, old) }
        slots[key] = Slot(entry: entry, sequence: sequence)
        bytes += Self.size(key, entry)
    }

    private static func size(_ key: CacheKey, _ entry: VersionedEntry) -> Int {
        key.bytes.count + (entry.value?.count ?? 0)
    }
}
