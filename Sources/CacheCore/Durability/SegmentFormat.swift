/// Why a scan of a segment or snapshot stopped before the end of its bytes.
public enum ScanStop: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes end inside a record or header: a torn tail.
    case truncated(offset: Int)
    /// The bytes at `offset` are damaged or out of order.
    case corrupt(offset: Int, reason: String)

    /// Where the valid prefix ends.
    public var offset: Int {
        switch self {
        case .truncated(let offset), .corrupt(let offset, _): offset
        }
    }

    public var description: String {
        switch self {
        case .truncated(let offset): "torn tail at byte \(offset)"
        case .corrupt(let offset, let reason): "\(reason) at byte \(offset)"
        }
    }
}

/// A segment file of the write-ahead log: a header, then records in sequence order.
///
/// ```
/// header := magic "SCWL" | version u32 | firstSequence u64 | crc32c u32 (over the 16 bytes before it)
/// ```
public enum WALSegment {
    /// Bytes of a segment header.
    public static let headerSize = 20
    static let magic: [UInt8] = Array("SCWL".utf8)

    /// The header of a segment whose first record will carry `firstSequence`.
    public static func header(firstSequence: UInt64) -> [UInt8] {
        // The first record of a segment is the one after the last: never 0 (the reader refuses it).
        precondition(firstSequence != 0, "WALSegment: a segment starting at sequence 0")
        return fileHeader(magic: magic, sequence: firstSequence)
    }

    /// What a scan found.
    public struct Scan: Equatable, Sendable {
        /// The header's first sequence, if the header was whole.
        public var firstSequence: UInt64?
        /// How many whole records were found.
        public var records = 0
        /// The sequence of the last whole record.
        public var lastSequence: UInt64?
        /// The length of the valid prefix: the header and every whole record before the first bad one.
        public var validLength = 0
        /// Why the scan stopped early, or `nil` if every byte was valid.
        public var stop: ScanStop?
    }

    /// Reads every whole record of a segment in order, handing each to `body`, and stops at the
    /// first torn, corrupt or out-of-order one. Never traps.
    public static func scan(_ bytes: UnsafeRawBufferPointer, _ body: (WALRecord) -> Void) -> Scan {
        var scan = Scan()
        switch readFileHeader(bytes, magic: magic) {
        case .failure(let stop):
            scan.stop = stop
            return scan
        case .success(let firstSequence):
            scan.firstSequence = firstSequence
        }
        var offset = headerSize
        scan.validLength = offset
        var previous: UInt64? = nil
        while true {
            switch WALFormat.decode(bytes, at: offset) {
            case .end:
                return scan
            case .truncated(let at):
                scan.stop = .truncated(offset: at)
                return scan
            case .corrupt(let at, let reason):
                scan.stop = .corrupt(offset: at, reason: reason)
                return scan
            case .record(let record, let next):
                assert(next > offset, "WALSegment: a record that does not advance the scan")
                let floor = previous.map { $0 &+ 1 } ?? scan.firstSequence!
                guard record.sequence >= floor, record.sequence != 0 else {
                    scan.stop = .corrupt(offset: offset, reason: "sequence \(record.sequence) out of order")
                    return scan
                }
                body(record)
                previous = record.sequence
                scan.records += 1
                scan.lastSequence = record.sequence
                offset = next
                scan.validLength = next
            }
        }
    }

    static func fileHeader(magic: [UInt8], sequence: UInt64) -> [UInt8] {
        var header = magic
        WALFormat.appendInteger(WALFormat.version, to: &header)
        WALFormat.appendInteger(sequence, to: &header)
        WALFormat.appendInteger(CRC32C.checksum(header), to: &header)
        assert(header.count == headerSize, "WALSegment: a header of \(header.count) bytes")
        return header
    }

    static func readFileHeader(_ bytes: UnsafeRawBufferPointer, magic: [UInt8]) -> Result<UInt64, ScanStop> {
        guard bytes.count >= headerSize else { return .failure(.truncated(offset: 0)) }
        guard bytes.prefix(4).elementsEqual(magic) else { return .failure(.corrupt(offset: 0, reason: "bad magic")) }
        let stored = WALFormat.readInteger(UInt32.self, bytes, at: 16)
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<16])) == stored else {
            return .failure(.corrupt(offset: 0, reason: "header checksum mismatch"))
        }
        let version = WALFormat.readInteger(UInt32.self, bytes, at: 4)
        guard version == WALFormat.version else {
            return .failure(.corrupt(offset: 0, reason: "unsupported format version \(version)"))
        }
        return .success(WALFormat.readInteger(UInt64.self, bytes, at: 8))
    }
}

/// A snapshot file: the entries of a store as of one sequence number.
///
/// ```
/// snapshot := magic "SCSN" | version u32 | sequence u64 | crc32c u32 | entry record* | snapshot-end record
/// ```
/// Every entry is a versioned record (values and the tombstones still awaiting collection) or a
/// member record (the members the node knew), carrying the snapshot's sequence; the closing record
/// carries the count of both. Snapshots written by the
/// single-node release hold put records instead; they are read for migration only. A snapshot is
/// valid only if it is whole: header, every record, and the end record as the last bytes with the
/// right count.
public enum SnapshotFormat {
    static let magic: [UInt8] = Array("SCSN".utf8)

    /// The header of a snapshot covering every record up to and including `sequence`.
    public static func header(sequence: UInt64) -> [UInt8] {
        WALSegment.fileHeader(magic: magic, sequence: sequence)
    }

    /// Appends one entry.
    public static func appendEntry(key: [UInt8], _ entry: VersionedEntry, sequence: UInt64, to buffer: inout [UInt8]) {
        assert(buffer.count >= WALSegment.headerSize, "SnapshotFormat: an entry before the header")
        WALFormat.encode(WALRecord(sequence: sequence, operation: .versioned(key: key, entry: entry)), into: &buffer)
    }

    /// Appends the closing record.
    public static func appendEnd(sequence: UInt64, entryCount: Int, to buffer: inout [UInt8]) {
        WALFormat.encodeSnapshotEnd(sequence: sequence, entryCount: UInt64(entryCount), into: &buffer)
    }

    /// Appends what the node knew of one member.
    public static func appendMember(_ update: MemberUpdate, sequence: UInt64, to buffer: inout [UInt8]) {
        assert(buffer.count >= WALSegment.headerSize, "SnapshotFormat: a member before the header")
        WALFormat.encode(WALRecord(sequence: sequence, operation: .member(update)), into: &buffer)
    }

    /// The whole encoding of a snapshot of `members` and `entries` (tests and small stores; the
    /// server streams).
    public static func encode(
        sequence: UInt64, members: [MemberUpdate] = [], entries: [(key: [UInt8], entry: VersionedEntry)]
    ) -> [UInt8] {
        var buffer = header(sequence: sequence)
        for member in members { appendMember(member, sequence: sequence, to: &buffer) }
        for item in entries { appendEntry(key: item.key, item.entry, sequence: sequence, to: &buffer) }
        appendEnd(sequence: sequence, entryCount: members.count + entries.count, to: &buffer)
        return buffer
    }

    /// Reads a snapshot, handing each entry to `body` as the operation it records (`.versioned` or
    /// `.member`, or `.put` in a snapshot of the single-node release). Returns the sequence it covers
    /// and how many records it held, or why it is not a whole, valid snapshot; entries handed out
    /// before a failure must be discarded.
    public static func read(
        _ bytes: UnsafeRawBufferPointer,
        _ body: (WALOperation) -> Void
    ) -> Result<(sequence: UInt64, entries: Int), ScanStop> {
        let sequence: UInt64
        switch WALSegment.readFileHeader(bytes, magic: magic) {
        case .failure(let stop): return .failure(stop)
        case .success(let value): sequence = value
        }
        var offset = WALSegment.headerSize
        var entries = 0
        while true {
            switch WALFormat.decodeRaw(bytes, at: offset) {
            case .end:
                return .failure(.truncated(offset: offset))
            case .truncated(let at):
                return .failure(.truncated(offset: at))
            case .corrupt(let at, let reason):
                return .failure(.corrupt(offset: at, reason: reason))
            case .record(let recordSequence, let kind, let recordBody, let next):
                guard recordSequence == sequence else {
                    return .failure(
                        .corrupt(offset: offset, reason: "entry sequence \(recordSequence) is not \(sequence)"))
                }
                assert(next > offset, "SnapshotFormat: a record that does not advance the read")
                if kind == WALFormat.Kind.snapshotEnd.rawValue {
                    var reader = WALFormat.BodyReader(bytes: recordBody)
                    guard let count = reader.read(UInt64.self), reader.isAtEnd, count == UInt64(entries),
                        next == bytes.count
                    else {
                        return .failure(.corrupt(offset: offset, reason: "snapshot end does not match its entries"))
                    }
                    return .success((sequence, entries))
                }
                switch WALFormat.decodeOperation(kind: kind, body: recordBody) {
                case .success(let operation):
                    switch operation {
                    case .delete: return .failure(.corrupt(offset: offset, reason: "snapshot entry is a delete"))
                    case .dropped: return .failure(.corrupt(offset: offset, reason: "snapshot entry is a drop"))
                    case .put, .versioned, .member: break
                    }
                    body(operation)
                case .failure(let error):
                    return .failure(.corrupt(offset: offset, reason: error.message))
                }
                entries += 1
                offset = next
            }
        }
    }
}
