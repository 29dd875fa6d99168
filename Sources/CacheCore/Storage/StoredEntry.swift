/// The fixed part of an entry, stored at the head of its one allocation.
///
/// 29 bytes: with the 16-byte object header, an entry of a 12-byte key and a 100-byte value is one
/// 157-byte allocation (jemalloc's 160-byte class). The version's node is an index into the store's
/// `NodeNames`, not a string, so that a name is kept once per store rather than once per entry.
struct EntryHeader {
    /// The version's hybrid-clock reading.
    var wall: Int64
    /// Expiry in nanoseconds since the epoch; `Int64.max` (the end of representable time, so never
    /// reached) for an entry that never expires. Read through `StoredEntry.expiresAt`.
    var expiry: Int64
    var logical: UInt32
    var valueCount: UInt32
    var keyCount: UInt16
    /// The version's coordinating node, as its index in the store's `NodeNames`.
    var node: UInt16
    /// `false` for a tombstone (a delete, or a value dropped once it expired).
    var hasValue: Bool
}

/// One entry's allocation: header, then the key, then the value.
final class EntryBuffer: ManagedBuffer<EntryHeader, UInt8> {}

/// One entry's bytes: header, then the key, then the value. Immutable once made, so it may be shared
/// between threads (a snapshot being written reads entries the event loop no longer holds); that is
/// why it is `Sendable` although `ManagedBuffer` is not.
struct EntryStorage: @unchecked Sendable {
    let buffer: EntryBuffer

    /// An entry of `key` and `value` (`nil`: a tombstone).
    static func make(
        key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer?, wall: Int64, logical: UInt32, node: UInt16,
        expiry: Int64
    ) -> EntryStorage {
        precondition(key.count <= Int(UInt16.max), "EntryStorage: key too long")
        precondition((value?.count ?? 0) <= Int(UInt32.max), "EntryStorage: value too long")
        let valueCount = value?.count ?? 0
        let header = EntryHeader(
            wall: wall, expiry: expiry, logical: logical, valueCount: UInt32(valueCount), keyCount: UInt16(key.count),
            node: node, hasValue: value != nil)
        let buffer = unsafeDowncast(
            EntryBuffer.create(minimumCapacity: key.count + valueCount) { _ in header }, to: EntryBuffer.self)
        buffer.withUnsafeMutablePointerToElements { elements in
            if let base = key.baseAddress {
                elements.initialize(from: base.assumingMemoryBound(to: UInt8.self), count: key.count)
            }
            if let value, let base = value.baseAddress {
                (elements + key.count).initialize(from: base.assumingMemoryBound(to: UInt8.self), count: value.count)
            }
        }
        return EntryStorage(buffer: buffer)
    }

    var header: EntryHeader { buffer.header }

    var keyCount: Int { Int(header.keyCount) }
    var valueCount: Int { Int(header.valueCount) }
    var hasValue: Bool { header.hasValue }

    /// Calls `body` with the key's bytes.
    @inline(__always)
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutablePointers { header, elements in
            try body(UnsafeRawBufferPointer(start: elements, count: Int(header.pointee.keyCount)))
        }
    }

    /// Calls `body` with the value's bytes (empty for a tombstone).
    @inline(__always)
    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutablePointers { header, elements in
            try body(
                UnsafeRawBufferPointer(
                    start: elements + Int(header.pointee.keyCount), count: Int(header.pointee.valueCount)))
        }
    }

    /// Whether the key is exactly `other`'s bytes.
    @inline(__always)
    func keyEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == Int(header.keyCount) else { return false }
        return withKey { mine in mine.elementsEqual(other) }
    }

    var key: [UInt8] { withKey { Array($0) } }
    var value: [UInt8]? { header.hasValue ? withValue { Array($0) } : nil }
}

/// A read-only view of one entry as a replica holds it: the key, the value (none for a tombstone),
/// the version and the expiry, all in one immutable allocation shared without copying.
///
/// The server writes a value straight from here into a response; `bytes` copies it out.
public struct StoredEntry: Sendable, Equatable {
    let storage: EntryStorage
    /// The version's coordinating node (the store's `NodeNames` keep names once).
    public let versionNode: NodeID

    init(storage: EntryStorage, versionNode: NodeID) {
        self.storage = storage
        self.versionNode = versionNode
    }

    /// An entry of `key` made from a message's or a log record's entry (its bytes are copied once).
    public init(key: [UInt8], _ entry: VersionedEntry) {
        let storage = key.withUnsafeBytes { keyBytes in
            func make(_ value: UnsafeRawBufferPointer?) -> EntryStorage {
                EntryStorage.make(
                    key: keyBytes, value: value, wall: entry.version.wall, logical: entry.version.logical, node: 0,
                    expiry: entry.expiryNanoseconds)
            }
            guard let value = entry.value else { return make(nil) }
            return value.withUnsafeBytes { make($0) }
        }
        self.init(storage: storage, versionNode: entry.version.node)
    }

    /// The write's version.
    public var version: Version {
        Version(wall: storage.header.wall, logical: storage.header.logical, node: versionNode)
    }

    /// When the value expires (`nil`: never).
    public var expiresAt: Instant? {
        storage.header.expiry == .max ? nil : Instant(nanosecondsSinceEpoch: storage.header.expiry)
    }

    /// Whether this is a value (not a tombstone).
    public var hasValue: Bool { storage.hasValue }

    /// The value's length in bytes (0 for a tombstone).
    public var valueCount: Int { storage.valueCount }

    /// Calls `body` with the value's bytes, without copying them.
    public func withValueBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withValue(body)
    }

    /// The key's bytes.
    public var key: [UInt8] { storage.key }

    /// A copy of the value's bytes (`nil` for a tombstone).
    public var value: [UInt8]? { storage.value }

    /// The entry as messages and log records carry it.
    public var versionedEntry: VersionedEntry {
        VersionedEntry(version: version, value: value, expiresAt: expiresAt)
    }

    /// Whether the entry is a value that has not expired at `now`.
    public func isLive(at now: Instant) -> Bool {
        storage.hasValue && now.nanosecondsSinceEpoch < storage.header.expiry
    }

    public static func == (lhs: StoredEntry, rhs: StoredEntry) -> Bool {
        lhs.storage.buffer === rhs.storage.buffer || lhs.versionedEntry == rhs.versionedEntry
    }
}

extension VersionedEntry {
    /// The expiry as the store's header keeps it: `Int64.max` for never.
    var expiryNanoseconds: Int64 { expiresAt?.nanosecondsSinceEpoch ?? .max }
}
