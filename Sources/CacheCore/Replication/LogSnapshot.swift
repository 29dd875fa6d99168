/// The store as of one log record, to be written as a snapshot in the background.
///
/// Holds a copy-on-write reference to the store's table: taking it costs nothing, and the entries it
/// holds are immutable, so the driver may encode it on another thread while the node goes on.
public struct LogSnapshot: Sendable, Equatable {
    /// The snapshot covers every log record up to and including this one.
    public let upTo: UInt64
    private let table: EntryTable
    private let names: NodeNames
    private let now: Instant
    private let keepsTombstones: Bool
    /// What the node knew of the members it had reached, as its log's member records said.
    public let members: [MemberUpdate]

    init(upTo: UInt64, store: ReplicaStore, members: [MemberUpdate], now: Instant) {
        self.upTo = upTo
        self.members = members
        self.table = store.table
        self.names = store.names
        self.now = now
        self.keepsTombstones = store.keepsTombstones
    }

    /// Entries in the table (tombstones included; expired values may be left out when encoded).
    public var entryCount: Int { table.count }

    /// Encodes the whole snapshot file (the members first), handing it to `write` in pieces of
    /// about `chunkBytes`.
    /// Values already expired are written as tombstones, or left out with tombstones on a node that
    /// keeps none.
    public func encode(chunkBytes: Int = 1 << 20, _ write: ([UInt8]) throws -> Void) rethrows {
        var buffer = SnapshotFormat.header(sequence: upTo)
        buffer.reserveCapacity(chunkBytes + 4096)
        for member in members { SnapshotFormat.appendMember(member, sequence: upTo, to: &buffer) }
        var count = members.count
        for index in table.occupiedIndices {
            let storage = table[index].entry!
            let live = storage.hasValue && now.nanosecondsSinceEpoch < storage.header.expiry
            guard live || keepsTombstones else { continue }
            let version = Version(
                wall: storage.header.wall, logical: storage.header.logical, node: names[storage.header.node])
            let expiresAt = storage.header.expiry == .max ? nil : Instant(nanosecondsSinceEpoch: storage.header.expiry)
            let entry = VersionedEntry(version: version, value: live ? storage.value : nil, expiresAt: expiresAt)
            SnapshotFormat.appendEntry(key: storage.key, entry, sequence: upTo, to: &buffer)
            count += 1
            if buffer.count >= chunkBytes {
                try write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        SnapshotFormat.appendEnd(sequence: upTo, entryCount: count, to: &buffer)
        try write(buffer)
    }

    public static func == (lhs: LogSnapshot, rhs: LogSnapshot) -> Bool {
        lhs.upTo == rhs.upTo && lhs.table.count == rhs.table.count && lhs.now == rhs.now
            && lhs.members == rhs.members
    }
}
