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

/// A replica's entries: a write replaces what a key holds only when its version is greater, so
/// replicas that see the same writes in any order, any number of times, end equal.
///
/// Deletes and expired values stay as tombstones carrying their version, so an older write arriving
/// late from a stale replica can never bring a deleted key back; tombstones go once every replica
/// holds them (`ClusterNode`'s collection). A node alone in its cluster has no replica to bring
/// anything back and keeps no tombstones (`keepsTombstones`).
///
/// It is also what the single-node store was: the entry and memory limits, sampled-LRU eviction
/// (Redis's: the least recently used of five random values), expiry on access and by an active
/// sweep, and the counters `/stats` shows. Every change keeps the indexes the cluster needs in step:
/// the per-peer anti-entropy digests, the keys this node holds but does not own (for handoff), and
/// the tombstones awaiting collection. Pure: time comes in with each call, sampling draws from the
/// generator seeded at creation.
public struct ReplicaStore: Sendable {
    /// Counters about the store; cheap to copy.
    public struct Statistics: Sendable, Equatable {
        /// Values held, including expired ones not yet noticed.
        public var liveEntries = 0
        /// Tombstones held: deletes, and values dropped once they expired, kept until collected.
        public var tombstones = 0
        /// The store's own estimate of the bytes its entries use.
        public var estimatedBytes = 0
        /// Values removed to stay within the entry or memory limit.
        public var evictions: UInt64 = 0
        /// Values removed or turned into tombstones because their time to live passed.
        public var expirations: UInt64 = 0

        public init() {}
    }

    /// Whether a write may evict other entries to make room.
    public enum Admission: Sendable, Equatable {
        /// A client's write, a read repair or a handoff: the cache makes room, as any cache does.
        case evictIfNeeded
        /// An anti-entropy push of a key this replica does not hold: taken only if it fits. A replica
        /// that evicted a key does not take it back from a peer that still holds it, or the two
        /// would fight over it every round.
        case onlyIfRoom
    }

    /// The outcome of applying a write.
    public enum ApplyResult: Equatable, Sendable {
        /// The write was newer and replaced what the key held.
        case applied(previousWasLive: Bool)
        /// The key already holds this exact version.
        case duplicate
        /// The key holds a newer version; the write changed nothing.
        case stale(current: Version)
        /// Not taken: no room for an `onlyIfRoom` write, or its version names one node more than the
        /// store can keep names for.
        case notAdmitted
    }

    /// Why a client's write cannot be stored at all.
    public enum PutRejection: Error, Equatable, Sendable {
        case emptyKey
        case keyTooLarge(bytes: Int, limit: Int)
        case valueTooLarge(bytes: Int, limit: Int)
        /// The entry alone would exceed the memory limit, even with every other entry evicted.
        case exceedsMemoryLimit(bytes: Int, limit: Int)
    }

    /// Where this node sits in the cluster: what the digests and the handoff list depend on.
    public struct Placement: Sendable {
        public var me: NodeID
        public var ring: HashRing
        public var replicationFactor: Int

        public init(me: NodeID, ring: HashRing, replicationFactor: Int) {
            self.me = me
            self.ring = ring
            self.replicationFactor = replicationFactor
        }

        func replicas(of key: KeyReference) -> [NodeID] {
            ring.preferenceList(forPosition: key.position, count: replicationFactor)
        }

        /// Whether this node is the ring's only member: nothing is shared, nothing handed off. (A
        /// node leaving is outside the ring, however few are in it: everything it holds goes.)
        var isAlone: Bool { ring.members.count <= 1 && (ring.members.first ?? me) == me }
    }

    /// Bytes charged per entry on top of its key and value: the entry's header and object header
    /// (45 bytes), its share of the table (16-byte buckets at most 7/8 full) and the allocator's
    /// rounding. An estimate; the allocator's own figure corrects it (`allocatorReported`).
    public static let entryOverheadBytes = 80
    /// Values examined per eviction (Redis's default, close to true LRU in practice).
    public static let evictionSampleSize = 5

    /// The bounds the store keeps to.
    public let limits: StoreLimits
    /// Counters since the store was created.
    public private(set) var statistics = Statistics()
    /// Whether dead entries are kept as tombstones for collection (a node with peers) or dropped at
    /// once (a node alone, which no replica can contradict).
    public private(set) var keepsTombstones = true

    var table = EntryTable()
    var names = NodeNames()
    private var random: SplitMix64
    /// A logical clock advanced by every read and write; buckets remember it for LRU. Wraps: ages
    /// are differences, so only an entry untouched for four billion accesses is misjudged.
    private var accessClock: UInt32 = 0
    /// What the allocator reported beyond the estimate at its last report: the rest of the process
    /// plus the estimate's error, added when the memory limit is checked.
    private var allocatorOverhead = 0
    private(set) var placement: Placement?
    private(set) var digests = PeerDigests()
    /// Keys this node holds but does not own, in the order they were found.
    /// Bounded by the store itself: a key is queued at most once (`handoffQueued`).
    private var handoffCandidates = BoundedQueue<KeyReference>(capacity: .max)
    private var handoffQueued = Set<KeyReference>()
    /// Tombstones by the instant they are due to be looked at for collection.
    private var tombstoneQueue = PriorityQueue<KeyReference>()
    /// The injected bug `evict-tombstones` (`ClusterNode.Configuration.InjectedBug`): eviction
    /// samples tombstones as well as values.
    var evictsTombstones = false
    /// Keys evicted since the last `drainEvictedKeys()`, when asked to keep them (the simulator's
    /// checkers need to know which keys a node gave up).
    private var evictedKeys: [[UInt8]]?

    /// An empty store.
    public init(limits: StoreLimits = StoreLimits(), seed: UInt64 = 0, recordsEvictedKeys: Bool = false) {
        self.limits = limits
        self.random = SplitMix64(seed: seed)
        self.evictedKeys = recordsEvictedKeys ? [] : nil
    }

    /// Entries held, tombstones included.
    public var count: Int { table.count }

    /// What the memory limit is checked against: the estimate plus the allocator's correction.
    public var memoryUsage: Int { statistics.estimatedBytes + allocatorOverhead }

    // MARK: Reading

    /// What `key` holds, without touching it (tests, checkers, anti-entropy).
    public func entry(for key: CacheKey) -> VersionedEntry? {
        stored(KeyReference(key))?.versionedEntry
    }

    /// What `key` holds, as shared bytes, without touching it.
    public func stored(_ key: KeyReference) -> StoredEntry? {
        guard let index = find(key) else { return nil }
        return view(table[index].entry!)
    }

    /// A replica's read of `key` at `now`: marks it recently used, and notices an expired value
    /// (which becomes a tombstone, or goes when tombstones are not kept).
    public mutating func read(_ key: KeyReference, now: Instant) -> StoredEntry? {
        guard let index = find(key) else { return nil }
        let storage = table[index].entry!
        if storage.hasValue, storage.header.expiry <= now.nanosecondsSinceEpoch {
            expire(at: index, key: key, now: now)
            return stored(key)
        }
        accessClock &+= 1
        table.touch(index, clock: accessClock)
        return view(storage)
    }

    private func find(_ key: KeyReference) -> Int? {
        key.bytes.withUnsafeBytes { table.find(key: $0, hash: key.hash) }
    }

    private func view(_ storage: EntryStorage) -> StoredEntry {
        StoredEntry(storage: storage, versionNode: names[storage.header.node])
    }

    private func version(of storage: EntryStorage) -> Version {
        Version(wall: storage.header.wall, logical: storage.header.logical, node: names[storage.header.node])
    }

    /// Every key, in byte order (tests and checkers; never the table's or a dictionary's order).
    public var sortedKeys: [CacheKey] {
        table.occupiedIndices.map { CacheKey(bytes: table[$0].entry!.key) }
            .sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
    }

    // MARK: Writing

    /// Whether `value` may be stored under `key` by a client, checked before anything changes.
    public func validate(keyCount: Int, valueCount: Int) -> PutRejection? {
        if keyCount == 0 { return .emptyKey }
        if keyCount > limits.maximumKeyBytes { return .keyTooLarge(bytes: keyCount, limit: limits.maximumKeyBytes) }
        if valueCount > limits.maximumValueBytes {
            return .valueTooLarge(bytes: valueCount, limit: limits.maximumValueBytes)
        }
        if let maximumMemory = limits.maximumMemoryBytes {
            let cost = Self.cost(keyCount: keyCount, valueCount: valueCount)
            if cost + max(0, allocatorOverhead) > maximumMemory {
                return .exceedsMemoryLimit(bytes: cost, limit: maximumMemory)
            }
        }
        return nil
    }

    /// What applying `entry` to `key` would do, without doing it.
    public func check(
        _ key: KeyReference, _ entry: VersionedEntry, now: Instant, admission: Admission = .evictIfNeeded
    ) -> ApplyResult {
        check(key, entry, at: find(key), now: now, admission: admission)
    }

    private func check(
        _ key: KeyReference, _ entry: VersionedEntry, at index: Int?, now: Instant, admission: Admission
    ) -> ApplyResult {
        guard let index else {
            if names.existingIndex(of: entry.version.node) == nil, names.names.count >= NodeNames.capacity {
                return .notAdmitted
            }
            if admission == .onlyIfRoom, entry.isLive(at: now) || keepsTombstones {
                let cost = Self.cost(
                    keyCount: key.bytes.count, valueCount: entry.isLive(at: now) ? entry.value!.count : 0)
                if wouldPassLimits(addingValues: entry.isLive(at: now) ? 1 : 0, addingBytes: cost) {
                    return .notAdmitted
                }
            }
            return .applied(previousWasLive: false)
        }
        let storage = table[index].entry!
        let current = version(of: storage)
        if entry.version > current {
            if names.existingIndex(of: entry.version.node) == nil, names.names.count >= NodeNames.capacity {
                return .notAdmitted
            }
            return .applied(previousWasLive: storage.hasValue && now.nanosecondsSinceEpoch < storage.header.expiry)
        }
        if entry.version == current { return .duplicate }
        return .stale(current: current)
    }

    /// Applies `entry` to `key` when it is newer than what the key holds (and, for `onlyIfRoom`, fits).
    /// A value that has already expired at `now` is kept as a tombstone; with `keepsTombstones` off,
    /// a dead entry removes the key. With `unconditionally` (only ever set by a deliberately injected
    /// bug) the version comparison is skipped.
    @discardableResult
    public mutating func apply(
        _ key: KeyReference, _ entry: VersionedEntry, now: Instant, admission: Admission = .evictIfNeeded,
        unconditionally: Bool = false
    ) -> ApplyResult {
        var index = find(key)
        let result = check(key, entry, at: index, now: now, admission: admission)
        switch result {
        case .applied:
            break
        case .stale, .duplicate:
            guard unconditionally, let found = index, view(table[found].entry!).versionedEntry != entry else {
                return result
            }
        case .notAdmitted:
            return result
        }
        let live = entry.isLive(at: now)
        if !live, !keepsTombstones {
            if let index { removeEntry(at: index, key: key) }
            return result
        }
        guard let node = names.index(of: entry.version.node) else { return .notAdmitted }
        let value = live ? entry.value : nil
        let storage = key.bytes.withUnsafeBytes { keyBytes in
            func make(_ value: UnsafeRawBufferPointer?) -> EntryStorage {
                EntryStorage.make(
                    key: keyBytes, value: value, wall: entry.version.wall, logical: entry.version.logical, node: node,
                    expiry: entry.expiryNanoseconds)
            }
            guard let value else { return make(nil) }
            return value.withUnsafeBytes { make($0) }
        }
        let cost = Self.cost(storage)
        accessClock &+= 1
        if let found = index {
            let old = table[found].entry!
            let delta = cost - Self.cost(old)
            let addedValues = (storage.hasValue ? 1 : 0) - (old.hasValue ? 1 : 0)
            if !wouldPassLimits(addingValues: addedValues, addingBytes: delta) {
                table.replace(at: found, with: storage, lastAccess: accessClock)
                removed(old, key: key)
                inserted(storage, key: key)
                return result
            }
            // Over a limit: the old entry goes first (a replacement, not an eviction), then room is made.
            removeEntry(at: found, key: key)
            index = nil
        }
        if storage.hasValue { makeRoom(addingValues: 1, addingBytes: cost) }
        table.insert(storage, hash: key.hash, lastAccess: accessClock)
        inserted(storage, key: key)
        return result
    }

    /// Forgets `key` if it still holds `version` (a collected tombstone, or a key handed off).
    @discardableResult
    public mutating func remove(_ key: KeyReference, ifVersion version: Version) -> Bool {
        guard let index = find(key), self.version(of: table[index].entry!) == version else { return false }
        removeEntry(at: index, key: key)
        return true
    }

    // MARK: Expiry and limits

    /// Active expiry, as Redis does it: test `sampleSize` random entries and expire those whose time
    /// passed; go on for another round while at least a quarter of a sample had expired, up to
    /// `maximumRounds`. Bounded work per call, yet memory held by expired values is reclaimed without a
    /// full scan. Returns how many values expired.
    @discardableResult
    public mutating func sweepExpired(now: Instant, sampleSize: Int = 20, maximumRounds: Int = 16) -> Int {
        var expiredTotal = 0
        for _ in 0..<maximumRounds {
            let samples = min(sampleSize, table.count)
            if samples == 0 { break }
            var expired = 0
            for _ in 0..<samples {
                guard let index = table.randomOccupiedIndex(using: &random) else { break }
                let storage = table[index].entry!
                guard storage.hasValue, storage.header.expiry <= now.nanosecondsSinceEpoch else { continue }
                let key = storage.withKey { KeyReference(Array($0)) }
                expire(at: index, key: key, now: now)
                expired += 1
            }
            expiredTotal += expired
            if expired * 4 < samples { break }
        }
        return expiredTotal
    }

    /// Takes in the allocator's count of bytes allocated by the whole process, so that the memory
    /// limit is checked against what is really in use, and evicts if that is now over the limit.
    /// Returns how many values were evicted.
    @discardableResult
    public mutating func allocatorReported(allocatedBytes: Int) -> Int {
        allocatorOverhead = allocatedBytes - statistics.estimatedBytes
        let before = statistics.evictions
        makeRoom(addingValues: 0, addingBytes: 0)
        return Int(statistics.evictions - before)
    }

    /// Starts or stops keeping the keys of evictions for `drainEvictedKeys()`.
    public mutating func setRecordsEvictedKeys(_ records: Bool) {
        evictedKeys = records ? (evictedKeys ?? []) : nil
    }

    /// The keys evicted since the last call (when the store was made to record them).
    public mutating func drainEvictedKeys() -> [[UInt8]] {
        guard let keys = evictedKeys, !keys.isEmpty else { return [] }
        evictedKeys = []
        return keys
    }

    /// Whether adding `addingValues` values and `addingBytes` bytes would pass a limit.
    private func wouldPassLimits(addingValues: Int, addingBytes: Int) -> Bool {
        if let maximumEntries = limits.maximumEntries, addingValues > 0,
            statistics.liveEntries + addingValues > maximumEntries
        {
            return true
        }
        if let maximumMemory = limits.maximumMemoryBytes, addingBytes > 0, memoryUsage + addingBytes > maximumMemory {
            return true
        }
        return false
    }

    /// Evicts values until the addition fits both limits, or no value is left to evict (tombstones are
    /// never evicted: a deleted key must stay deleted; they go when collected).
    private mutating func makeRoom(addingValues: Int, addingBytes: Int) {
        while overLimits(addingValues: addingValues, addingBytes: addingBytes), let victim = sampleVictim() {
            let storage = table[victim].entry!
            let key = storage.withKey { KeyReference(Array($0)) }
            // Only values are evicted (and reported); a tombstone taken under the injected bug goes
            // unreported, so that the checkers see its consequence and excuse nothing.
            if storage.hasValue { evictedKeys?.append(key.bytes) }
            removeEntry(at: victim, key: key)
            statistics.evictions &+= 1
        }
    }

    private func overLimits(addingValues: Int, addingBytes: Int) -> Bool {
        if let maximumEntries = limits.maximumEntries, statistics.liveEntries + addingValues > maximumEntries {
            return true
        }
        if let maximumMemory = limits.maximumMemoryBytes, memoryUsage + addingBytes > maximumMemory { return true }
        return false
    }

    /// The least recently used of a few random values, or `nil` when the store holds none. A store
    /// of no more entries than a sample is looked at whole (exact LRU).
    private mutating func sampleVictim() -> Int? {
        guard statistics.liveEntries > 0 else { return nil }
        var best: Int?
        var bestAge: UInt32 = 0
        if table.count <= Self.evictionSampleSize {
            for index in table.occupiedIndices where table[index].entry!.hasValue || evictsTombstones {
                let age = accessClock &- table[index].lastAccess
                if best == nil || age > bestAge {
                    best = index
                    bestAge = age
                }
            }
            return best
        }
        var sampled = 0
        // Tombstones are skipped; a store of mostly tombstones gets a few more draws.
        for _ in 0..<(Self.evictionSampleSize * 8) where sampled < Self.evictionSampleSize {
            guard let index = table.randomOccupiedIndex(using: &random),
                table[index].entry!.hasValue || evictsTombstones
            else { continue }
            sampled += 1
            let age = accessClock &- table[index].lastAccess
            if best == nil || age > bestAge {
                best = index
                bestAge = age
            }
        }
        if best == nil {
            // Values are rare among tombstones: take the first one in table order.
            best = table.occupiedIndices.first { table[$0].entry!.hasValue }
        }
        return best
    }

    /// The value at `index` has expired: it becomes a tombstone (its version and expiry kept, so that
    /// collection and repairs treat it as the delete it amounts to), or goes.
    private mutating func expire(at index: Int, key: KeyReference, now: Instant) {
        let old = table[index].entry!
        precondition(old.hasValue, "ReplicaStore.expire: not a value")
        statistics.expirations &+= 1
        guard keepsTombstones else {
            removeEntry(at: index, key: key)
            return
        }
        let tombstone = old.withKey { keyBytes in
            EntryStorage.make(
                key: keyBytes, value: nil, wall: old.header.wall, logical: old.header.logical, node: old.header.node,
                expiry: old.header.expiry)
        }
        table.replace(at: index, with: tombstone)
        removed(old, key: key)
        inserted(tombstone, key: key)
    }

    /// Turns tombstone keeping on or off. Off (a node alone in its cluster): every tombstone goes now.
    public mutating func setKeepsTombstones(_ keeps: Bool) {
        guard keeps != keepsTombstones else { return }
        keepsTombstones = keeps
        guard !keeps else { return }
        tombstoneQueue.removeAll()
        // Removals move buckets: gather the keys first, then remove each by key.
        let tombstones = table.occupiedIndices.compactMap { index -> KeyReference? in
            let storage = table[index].entry!
            return storage.hasValue ? nil : storage.withKey { KeyReference(Array($0)) }
        }
        for key in tombstones {
            if let index = find(key) { removeEntry(at: index, key: key) }
        }
    }

    // MARK: Bookkeeping

    private static func cost(keyCount: Int, valueCount: Int) -> Int {
        keyCount + valueCount + entryOverheadBytes
    }

    private static func cost(_ storage: EntryStorage) -> Int {
        cost(keyCount: storage.keyCount, valueCount: storage.valueCount)
    }

    private mutating func removeEntry(at index: Int, key: KeyReference) {
        let storage = table.remove(at: index)
        removed(storage, key: key)
    }

    /// Every index follows an entry that entered the table.
    private mutating func inserted(_ storage: EntryStorage, key: KeyReference) {
        if storage.hasValue { statistics.liveEntries += 1 } else { statistics.tombstones += 1 }
        statistics.estimatedBytes += Self.cost(storage)
        if !storage.hasValue, keepsTombstones {
            let deadSince = storage.header.expiry == .max ? storage.header.wall : storage.header.expiry
            tombstoneQueue.push(key, priority: deadSince)
        }
        guard let placement, !placement.isAlone else { return }
        let replicas = placement.replicas(of: key)
        if digests.covers(key.hash) { toggleDigest(storage, key: key, replicas: replicas, me: placement.me) }
        if !replicas.contains(placement.me) { queueHandoff(key) }
    }

    /// Every index follows an entry that left the table (or was replaced).
    private mutating func removed(_ storage: EntryStorage, key: KeyReference) {
        if storage.hasValue { statistics.liveEntries -= 1 } else { statistics.tombstones -= 1 }
        statistics.estimatedBytes -= Self.cost(storage)
        assert(statistics.liveEntries >= 0 && statistics.tombstones >= 0, "ReplicaStore: negative counts")
        guard let placement, !placement.isAlone, digests.covers(key.hash) else { return }
        toggleDigest(storage, key: key, replicas: placement.replicas(of: key), me: placement.me)
    }

    private mutating func toggleDigest(_ storage: EntryStorage, key: KeyReference, replicas: [NodeID], me: NodeID) {
        guard replicas.count > 1, replicas.contains(me) else { return }
        let digest = Self.digest(key: key.bytes, version: version(of: storage))
        digests.toggle(digest, bucket: key.digestBucket, peers: replicas.lazy.filter { $0 != me })
    }

    /// The hash of a key and its version that digests XOR together.
    static func digest(key: [UInt8], version: Version) -> UInt64 {
        var bytes = key
        withUnsafeBytes(of: version.wall.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: version.logical.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: version.node.rawValue.utf8)
        return StableHash.xxh64(bytes)
    }

    // MARK: Cluster indexes

    /// The ring changed (or the store joined one): every key's replicas may differ, so the digests and
    /// the handoff list are rebuilt by a walk over the store (`continueIndexing`).
    public mutating func placementChanged(_ placement: Placement?) {
        self.placement = placement
        handoffCandidates.removeAll()
        handoffQueued.removeAll()
        if let placement, !placement.isAlone {
            digests.restart()
        } else {
            // Alone (or outside any ring): nothing is shared, nothing is handed off.
            digests = PeerDigests()
        }
    }

    /// Whether the digests and the handoff list cover every key.
    public var isIndexed: Bool { digests.isComplete }

    /// Walks on over about `budget` keys of the rebuild the last ring change started. Returns whether
    /// the walk is done.
    @discardableResult
    public mutating func continueIndexing(budget: Int) -> Bool {
        guard let placement, !digests.isComplete else { return true }
        let start = digests.coveredUpTo
        let remaining = (1 << 32) - start
        let span: UInt64
        if table.count == 0 {
            span = remaining
        } else {
            let perKey = max(1, (UInt64(1) << 32) / UInt64(table.count))
            span = min(remaining, max(1, perKey * UInt64(max(budget, 1))))
        }
        if !placement.isAlone {
            for index in table.indices(hashes: start..<(start + span)) {
                let storage = table[index].entry!
                let key = storage.withKey { KeyReference(Array($0)) }
                let replicas = placement.replicas(of: key)
                toggleDigest(storage, key: key, replicas: replicas, me: placement.me)
                if !replicas.contains(placement.me) { queueHandoff(key) }
            }
        }
        digests.advance(to: start + span)
        return digests.isComplete
    }

    /// The non-zero digest buckets of the keys shared with `peer`; `nil` while the walk runs.
    public func digests(sharedWith peer: NodeID) -> [DigestBucket]? {
        digests.digests(sharedWith: peer)
    }

    /// The digest of one bucket of the keys shared with `peer`.
    public func digest(sharedWith peer: NodeID, bucket: UInt16) -> UInt64 {
        digests.digest(sharedWith: peer, bucket: Int(bucket))
    }

    /// The entries in anti-entropy `buckets` that this node and `peer` both replicate, in table order.
    public func entries(inDigestBuckets buckets: [UInt16], sharedWith peer: NodeID) -> [(KeyReference, StoredEntry)] {
        guard let placement else { return [] }
        var result: [(KeyReference, StoredEntry)] = []
        for bucket in buckets.sorted() where Int(bucket) < PeerDigests.bucketCount {
            let low = UInt64(bucket) << 22
            for index in table.indices(hashes: low..<(low + (1 << 22))) {
                let storage = table[index].entry!
                let key = storage.withKey { KeyReference(Array($0)) }
                let replicas = placement.replicas(of: key)
                guard replicas.contains(placement.me), replicas.contains(peer) else { continue }
                result.append((key, view(storage)))
            }
        }
        return result
    }

    private mutating func queueHandoff(_ key: KeyReference) {
        guard handoffQueued.insert(key).inserted else { return }
        handoffCandidates.append(key)
    }

    /// Offers `key` to the handoff pass again (its handoff ended without the node letting go of it).
    public mutating func requeueHandoff(_ key: KeyReference) { queueHandoff(key) }

    /// The next key found held but not owned, for the handoff pass (which checks it again).
    public mutating func nextHandoffCandidate() -> KeyReference? {
        guard let key = handoffCandidates.popFirst() else { return nil }
        handoffQueued.remove(key)
        return key
    }

    /// How many keys wait for the handoff pass.
    public var handoffBacklog: Int { handoffCandidates.count }

    /// The next tombstone whose time to be looked at for collection has come (`dueAfter` past its
    /// death), if any. The caller checks that it is still there and decides.
    public mutating func nextDueTombstone(now: Instant, dueAfter grace: Duration) -> KeyReference? {
        let limit = now.advanced(byNanoseconds: -grace.nanoseconds).nanosecondsSinceEpoch
        return tombstoneQueue.pop(ifAtMost: limit)?.element
    }

    /// Looks at `key` again for collection once `at` minus `grace` is its death time: the caller
    /// passes the instant it wants to be asked again.
    public mutating func requeueTombstone(_ key: KeyReference, at instant: Instant, grace: Duration) {
        tombstoneQueue.push(key, priority: instant.advanced(byNanoseconds: -grace.nanoseconds).nanosecondsSinceEpoch)
    }

    /// Tombstones waiting to be looked at.
    public var tombstoneBacklog: Int { tombstoneQueue.count }
}
