/// The entries of a store in one open-addressing hash table, kept in the order of the keys' ring
/// positions.
///
/// Each bucket is 16 bytes: the entry, the top 32 bits of its key's ring position, and its last
/// access for sampled LRU. A key's home bucket is the top bits of that position, and Robin Hood
/// insertion with backward-shift deletion keeps the table sorted by home (Amble and Knuth's ordered
/// hash table), so the keys of a range of positions (an anti-entropy bucket, say) sit together and
/// are found without a scan of the store. Random sampling for eviction and expiry picks a random
/// bucket and takes the next occupied one. Nothing iterates a `Dictionary`, so the order of every
/// walk depends only on the history of the table.
struct EntryTable: Sendable {
    struct Bucket: Sendable {
        var entry: EntryStorage?
        /// The top 32 bits of the key's ring position.
        var hash: UInt32
        /// The store's access clock at the last read or write of the entry.
        var lastAccess: UInt32
    }

    /// The smallest table allocated.
    static let minimumCapacity = 16

    private(set) var buckets: [Bucket] = []
    /// Occupied buckets.
    private(set) var count = 0
    /// A hash's home bucket is `hash >> shift`: the capacity is `1 << (32 - shift)`.
    private var shift: UInt32 = 32

    var capacity: Int { buckets.count }
    var isEmpty: Bool { count == 0 }
    private var mask: Int { buckets.count - 1 }

    /// The home bucket of `hash`.
    @inline(__always)
    func home(_ hash: UInt32) -> Int { Int(hash >> shift) }

    /// How far the entry in bucket `index` sits past its home.
    @inline(__always)
    private func displacement(at index: Int) -> Int { (index - home(buckets[index].hash)) & mask }

    subscript(index: Int) -> Bucket {
        get { buckets[index] }
    }

    /// The bucket holding `key` (whose position's top bits are `hash`), if any.
    func find(key: UnsafeRawBufferPointer, hash: UInt32) -> Int? {
        guard count > 0 else { return nil }
        return buckets.withUnsafeBufferPointer { buckets in
            var index = Int(hash >> shift)
            var distance = 0
            while true {
                let bucket = buckets[index]
                guard let entry = bucket.entry else { return nil }
                // Robin Hood order: once the residents sit closer to home than the search has come,
                // the key would have been placed before them.
                if (index - Int(bucket.hash >> shift)) & mask < distance { return nil }
                if bucket.hash == hash, entry.keyEquals(key) { return index }
                index = (index + 1) & mask
                distance += 1
            }
        }
    }

    /// Stores an entry whose key is not in the table.
    mutating func insert(_ entry: EntryStorage, hash: UInt32, lastAccess: UInt32) {
        growIfNeeded()
        var carried = Bucket(entry: entry, hash: hash, lastAccess: lastAccess)
        var index = home(hash)
        var distance = 0
        while true {
            if buckets[index].entry == nil {
                buckets[index] = carried
                count += 1
                return
            }
            let resident = displacement(at: index)
            if resident < distance {
                swap(&carried, &buckets[index])
                distance = resident
            }
            index = (index + 1) & mask
            distance += 1
            assert(distance <= capacity, "EntryTable.insert: no free bucket")
        }
    }

    /// Replaces the entry in bucket `index` (same key, so the same hash and place).
    mutating func replace(at index: Int, with entry: EntryStorage, lastAccess: UInt32? = nil) {
        precondition(buckets[index].entry != nil, "EntryTable.replace: bucket \(index) is empty")
        buckets[index].entry = entry
        if let lastAccess { buckets[index].lastAccess = lastAccess }
    }

    /// Records an access to the entry in bucket `index`.
    @inline(__always)
    mutating func touch(_ index: Int, clock: UInt32) {
        buckets[index].lastAccess = clock
    }

    /// Removes the entry in bucket `index` and returns it; later entries of its cluster move back one.
    @discardableResult
    mutating func remove(at index: Int) -> EntryStorage {
        guard let removed = buckets[index].entry else {
            preconditionFailure("EntryTable.remove: bucket \(index) is empty")
        }
        var hole = index
        while true {
            let next = (hole + 1) & mask
            guard buckets[next].entry != nil, displacement(at: next) > 0 else { break }
            buckets[hole] = buckets[next]
            hole = next
        }
        buckets[hole] = Bucket(entry: nil, hash: 0, lastAccess: 0)
        count -= 1
        shrinkIfNeeded()
        return removed
    }

    /// A random occupied bucket, or `nil` when empty. Uniform over the entries: buckets are drawn
    /// until one is occupied (the table is at least 1/8 full, so a few draws do); after 16 misses the
    /// next occupied bucket is taken.
    func randomOccupiedIndex(using random: inout SplitMix64) -> Int? {
        guard count > 0 else { return nil }
        var index = random.below(capacity)
        for _ in 0..<16 where buckets[index].entry == nil { index = random.below(capacity) }
        while buckets[index].entry == nil { index = (index + 1) & mask }
        return index
    }

    /// The buckets whose hash lies in `range` (a range of `UInt32` values, upper bound up to 2^32), in
    /// table order.
    func indices(hashes range: Range<UInt64>) -> [Int] {
        var found: [Int] = []
        guard count > 0, !range.isEmpty else { return found }
        precondition(range.upperBound <= 1 << 32, "EntryTable.indices: range past 2^32")
        let startHome = home(UInt32(range.lowerBound))
        let span = home(UInt32(range.upperBound - 1)) - startHome
        var index = startHome
        var steps = 0
        // Entries whose home is near the end of the range may sit past it, wrapped round to the
        // start of the table; a walk over (almost) the whole table meets them on a second lap. The
        // walk ends at an empty bucket past the range's homes (there is always one: the table is at
        // most 7/8 full), or at an entry whose home is past them.
        while steps < 2 * capacity {
            let bucket = buckets[index]
            if bucket.entry == nil {
                // Nothing after an empty bucket sits before its home, so past the range's homes the
                // walk is over.
                if steps > span { break }
            } else {
                let homeOffset = steps - displacement(at: index)
                if homeOffset > span { break }
                if homeOffset >= 0, range.contains(UInt64(bucket.hash)) { found.append(index) }
            }
            index = (index + 1) & mask
            steps += 1
        }
        return found
    }

    /// Every occupied bucket's index, in table order.
    var occupiedIndices: [Int] {
        var found: [Int] = []
        found.reserveCapacity(count)
        for index in buckets.indices where buckets[index].entry != nil { found.append(index) }
        return found
    }

    /// Whether every cluster is in home order (tests): an entry right after an empty bucket is at its
    /// home, and each next entry sits at most one bucket further from its home than the one before
    /// it, which is to say its home is no earlier.
    var isOrderedByHome: Bool {
        for index in buckets.indices where buckets[index].entry != nil {
            let previous = (index - 1) & mask
            if buckets[previous].entry == nil {
                if displacement(at: index) != 0 { return false }
            } else if displacement(at: index) > displacement(at: previous) + 1 {
                return false
            }
        }
        return true
    }

    // MARK: Resizing

    /// Doubles the table before it passes 7/8 full.
    private mutating func growIfNeeded() {
        if buckets.isEmpty {
            resize(to: Self.minimumCapacity)
        } else if (count + 1) * 8 > capacity * 7 {
            resize(to: capacity * 2)
        }
    }

    /// Halves the table once it is less than 1/8 full, so memory follows a store that shrank.
    private mutating func shrinkIfNeeded() {
        if capacity > Self.minimumCapacity, count * 8 < capacity { resize(to: capacity / 2) }
    }

    private mutating func resize(to newCapacity: Int) {
        precondition(newCapacity.nonzeroBitCount == 1 && newCapacity <= 1 << 32, "EntryTable: bad capacity")
        let old = buckets
        buckets = Array(repeating: Bucket(entry: nil, hash: 0, lastAccess: 0), count: newCapacity)
        shift = UInt32(32 - newCapacity.trailingZeroBitCount)
        count = 0
        for bucket in old {
            guard let entry = bucket.entry else { continue }
            insert(entry, hash: bucket.hash, lastAccess: bucket.lastAccess)
        }
    }
}
