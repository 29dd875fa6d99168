/// What one log record says happened to the store.
public enum WALOperation: Equatable, Sendable {
    /// `key` now holds `value`, expiring at `expiresAt` (`nil`: never).
    case put(key: [UInt8], value: [UInt8], expiresAt: Instant?)
    /// `key` was deleted.
    case delete(key: [UInt8])
    /// A replica took `entry` (a versioned value or tombstone) for `key`.
    case versioned(key: [UInt8], entry: VersionedEntry)
    /// The node let go of `key`'s entry at `version` (handed off to its owners, or a collected
    /// tombstone): replaying the log must not bring it back.
    case dropped(key: [UInt8], version: Version)
    /// What the node knew of another member it had reached (`Membership.persistentClaim(of:)`): the
    /// last such record of a member is what a restart starts from (docs/cluster-operations.md).
    case member(MemberUpdate)
}

/// One record of the write-ahead log: an operation and its place in the node's history.
public struct WALRecord: Equatable, Sendable {
    /// Strictly increasing over a node's whole history, across segments and restarts.
    public var sequence: UInt64
    /// What happened.
    public var operation: WALOperation

    /// Creates a record.
    public init(sequence: UInt64, operation: WALOperation) {
        self.sequence = sequence
        self.operation = operation
    }
}

/// The outcome of decoding at one offset: a whole record, the clean end, or why it stopped.
public enum WALDecodeStep: Equatable, Sendable {
    /// A whole, checksummed record, and the offset just past it.
    case record(WALRecord, next: Int)
    /// The bytes ended exactly at a record boundary.
    case end
    /// The bytes end inside a record (a torn tail): everything from `offset` is incomplete.
    case truncated(offset: Int)
    /// The bytes at `offset` are not a valid record.
    case corrupt(offset: Int, reason: String)
}

/// The on-disk record format of segments and snapshots (`docs/wal-format.md`), version 1.
///
/// ```
/// record := length u32 | crc32c u32 | sequence u64 | kind u8 | body
///   length: bytes after the first 8 (so 9 + body size)
///   crc32c: over the length field, then everything after the crc field
/// put body      := flags u8 (bit 0: has expiry) | [expiresAt i64] | keyLength u32 | key | valueLength u32 | value
/// delete body   := keyLength u32 | key
/// versioned body := wall i64 | logical u32 | nodeLength u16 | node
///                   | flags u8 (bit 0: has value, bit 1: has expiry) | [expiresAt i64]
///                   | keyLength u32 | key | [valueLength u32 | value]
/// snapshot end  := entryCount u64
/// dropped body  := wall i64 | logical u32 | nodeLength u16 | node | keyLength u32 | key
/// member body   := incarnation u64 | status u8 | idLength u16 | id | addressLength u16 | address
///                  | clientAddressLength u16 | clientAddress
/// ```
/// All integers are little-endian. Encoding and decoding are pure; the decoder never traps, and
/// reports a short or damaged record as a value.
public enum WALFormat {
    /// The format version written in every segment and snapshot header.
    public static let version: UInt32 = 1
    /// Bytes of the length and checksum prefix.
    public static let prefixSize = 8
    /// The smallest valid `length`: a sequence and a kind.
    static let minimumLength = 9
    /// The largest `length` accepted: a maximal key and value, versioned by a node with the longest
    /// name, with their framing (40 bytes) and room to spare. (It once left out the name: a node
    /// named with more than 24 bytes wrote maximal records its recovery refused.)
    public static let maximumLength =
        StoreLimits.defaultMaxKeyBytes + StoreLimits.defaultMaxValueBytes + NodeID.maximumLength + 64

    enum Kind: UInt8 {
        case put = 1
        case delete = 2
        case snapshotEnd = 3
        case versioned = 4
        case dropped = 5
        case member = 6
    }

    // MARK: Encoding

    /// Appends the encoding of `record` to `buffer`.
    public static func encode(_ record: WALRecord, into buffer: inout [UInt8]) {
        // A segment's reader refuses sequence 0, and every reader records longer than
        // `maximumLength`: never write one (the log's sequences start at 1; so do its snapshots').
        assert(record.sequence != 0, "WALFormat: a record with sequence 0")
        let start = buffer.count
        defer {
            assert(buffer.count - start == encodedSize(of: record.operation), "WALFormat: a record of the wrong size")
        }
        switch record.operation {
        case .put(let key, let value, let expiresAt):
            encodeRecord(sequence: record.sequence, kind: .put, into: &buffer) { buffer in
                if let expiresAt {
                    buffer.append(1)
                    appendInteger(UInt64(bitPattern: expiresAt.nanosecondsSinceEpoch), to: &buffer)
                } else {
                    buffer.append(0)
                }
                appendInteger(UInt32(key.count), to: &buffer)
                buffer.append(contentsOf: key)
                appendInteger(UInt32(value.count), to: &buffer)
                buffer.append(contentsOf: value)
            }
        case .delete(let key):
            encodeRecord(sequence: record.sequence, kind: .delete, into: &buffer) { buffer in
                appendInteger(UInt32(key.count), to: &buffer)
                buffer.append(contentsOf: key)
            }
        case .versioned(let key, let entry):
            encodeRecord(sequence: record.sequence, kind: .versioned, into: &buffer) { buffer in
                appendInteger(entry.version.wall, to: &buffer)
                appendInteger(entry.version.logical, to: &buffer)
                let node = Array(entry.version.node.rawValue.utf8)
                appendInteger(UInt16(node.count), to: &buffer)
                buffer.append(contentsOf: node)
                buffer.append((entry.value == nil ? 0 : 1) | (entry.expiresAt == nil ? 0 : 2))
                if let expiresAt = entry.expiresAt { appendInteger(expiresAt.nanosecondsSinceEpoch, to: &buffer) }
                appendInteger(UInt32(key.count), to: &buffer)
                buffer.append(contentsOf: key)
                if let value = entry.value {
                    appendInteger(UInt32(value.count), to: &buffer)
                    buffer.append(contentsOf: value)
                }
            }
        case .dropped(let key, let version):
            encodeRecord(sequence: record.sequence, kind: .dropped, into: &buffer) { buffer in
                appendInteger(version.wall, to: &buffer)
                appendInteger(version.logical, to: &buffer)
                let node = Array(version.node.rawValue.utf8)
                appendInteger(UInt16(node.count), to: &buffer)
                buffer.append(contentsOf: node)
                appendInteger(UInt32(key.count), to: &buffer)
                buffer.append(contentsOf: key)
            }
        case .member(let update):
            assert(PeerProtocol.problem(with: [update]) == nil, "WALFormat: a member record its reader would refuse")
            encodeRecord(sequence: record.sequence, kind: .member, into: &buffer) { buffer in
                appendInteger(update.incarnation, to: &buffer)
                buffer.append(update.status.rawValue)
                for text in [update.id.rawValue, update.address, update.clientAddress] {
                    let bytes = Array(text.utf8)
                    appendInteger(UInt16(bytes.count), to: &buffer)
                    buffer.append(contentsOf: bytes)
                }
            }
        }
    }

    /// The encoding of `record`.
    public static func encode(_ record: WALRecord) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(encodedSize(of: record.operation))
        encode(record, into: &buffer)
        return buffer
    }

    /// The bytes a record of `operation` takes (so that encoding allocates once).
    static func encodedSize(of operation: WALOperation) -> Int {
        let fixed = prefixSize + 9
        switch operation {
        case .put(let key, let value, let expiresAt):
            return fixed + 1 + (expiresAt == nil ? 0 : 8) + 4 + key.count + 4 + value.count
        case .delete(let key):
            return fixed + 4 + key.count
        case .versioned(let key, let entry):
            return fixed + 8 + 4 + 2 + entry.version.node.rawValue.utf8.count + 1
                + (entry.expiresAt == nil ? 0 : 8) + 4 + key.count + (entry.value.map { 4 + $0.count } ?? 0)
        case .dropped(let key, let version):
            return fixed + 8 + 4 + 2 + version.node.rawValue.utf8.count + 4 + key.count
        case .member(let update):
            return fixed + 8 + 1 + 6 + update.id.rawValue.utf8.count + update.address.utf8.count
                + update.clientAddress.utf8.count
        }
    }

    static func encodeSnapshotEnd(sequence: UInt64, entryCount: UInt64, into buffer: inout [UInt8]) {
        assert(sequence != 0, "WALFormat: a snapshot end with sequence 0")
        encodeRecord(sequence: sequence, kind: .snapshotEnd, into: &buffer) { appendInteger(entryCount, to: &$0) }
    }

    private static func encodeRecord(
        sequence: UInt64, kind: Kind, into buffer: inout [UInt8], body: (inout [UInt8]) -> Void
    ) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: prefixSize))
        appendInteger(sequence, to: &buffer)
        buffer.append(kind.rawValue)
        body(&buffer)
        let bodyLength = buffer.count - start - prefixSize
        precondition(
            bodyLength >= minimumLength && bodyLength <= maximumLength,
            "WALFormat: a record of \(bodyLength) bytes, which the reader would refuse")
        let length = UInt32(bodyLength)
        withUnsafeBytes(of: length.littleEndian) { lengthBytes in
            for index in 0..<4 { buffer[start + index] = lengthBytes[index] }
        }
        let crc = buffer.withUnsafeBytes { bytes in
            let lengthCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + 4)]))
            return CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: bytes[(start + prefixSize)...]), continuing: lengthCRC)
        }
        withUnsafeBytes(of: crc.littleEndian) { crcBytes in
            for index in 0..<4 { buffer[start + 4 + index] = crcBytes[index] }
        }
    }

    static func appendInteger<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    // MARK: Decoding

    /// What a record at an offset holds, before its kind is interpreted.
    enum RawStep {
        case record(sequence: UInt64, kind: UInt8, body: UnsafeRawBufferPointer, next: Int)
        case end
        case truncated(offset: Int)
        case corrupt(offset: Int, reason: String)
    }

    /// Decodes the record starting at `offset` in `bytes`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> WALDecodeStep {
        switch decodeRaw(bytes, at: offset) {
        case .end: return .end
        case .truncated(let offset): return .truncated(offset: offset)
        case .corrupt(let offset, let reason): return .corrupt(offset: offset, reason: reason)
        case .record(let sequence, let kind, let body, let next):
            switch decodeOperation(kind: kind, body: body) {
            case .success(let operation):
                assert(next <= bytes.count, "WALFormat: a record past the bytes")
                return .record(WALRecord(sequence: sequence, operation: operation), next: next)
            case .failure(let reason):
                return .corrupt(offset: offset, reason: reason.message)
            }
        }
    }

    static func decodeRaw(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> RawStep {
        let remaining = bytes.count - offset
        if remaining == 0 { return .end }
        if remaining < prefixSize { return .truncated(offset: offset) }
        let length = Int(readInteger(UInt32.self, bytes, at: offset))
        guard length >= minimumLength, length <= maximumLength else {
            return .corrupt(offset: offset, reason: "record length \(length) out of range")
        }
        guard remaining - prefixSize >= length else { return .truncated(offset: offset) }
        let stored = readInteger(UInt32.self, bytes, at: offset + 4)
        let lengthCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 4)]))
        let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + prefixSize)..<(offset + prefixSize + length)])
        guard CRC32C.checksum(payload, continuing: lengthCRC) == stored else {
            return .corrupt(offset: offset, reason: "checksum mismatch")
        }
        let sequence = readInteger(UInt64.self, payload, at: 0)
        let body = UnsafeRawBufferPointer(rebasing: payload[9...])
        let next = offset + prefixSize + length
        assert(next > offset && next <= bytes.count, "WALFormat: a record past the bytes read")
        return .record(sequence: sequence, kind: payload[8], body: body, next: next)
    }

    struct FormatError: Error {
        var message: String
    }

    static func decodeOperation(kind: UInt8, body: UnsafeRawBufferPointer) -> Result<WALOperation, FormatError> {
        var reader = BodyReader(bytes: body)
        switch Kind(rawValue: kind) {
        case .put:
            guard let flags = reader.read(UInt8.self) else { return .failure(FormatError(message: "short put record")) }
            guard flags & ~1 == 0 else { return .failure(FormatError(message: "unknown put flags \(flags)")) }
            var expiresAt: Instant?
            if flags & 1 == 1 {
                guard let raw = reader.read(UInt64.self) else {
                    return .failure(FormatError(message: "short put record"))
                }
                expiresAt = Instant(nanosecondsSinceEpoch: Int64(bitPattern: raw))
            }
            guard let key = reader.readBytes(), let value = reader.readBytes(), reader.isAtEnd else {
                return .failure(FormatError(message: "malformed put record"))
            }
            return .success(.put(key: key, value: value, expiresAt: expiresAt))
        case .delete:
            guard let key = reader.readBytes(), reader.isAtEnd else {
                return .failure(FormatError(message: "malformed delete record"))
            }
            return .success(.delete(key: key))
        case .versioned:
            guard let wall = reader.read(Int64.self), let logical = reader.read(UInt32.self),
                let nodeLength = reader.read(UInt16.self), let node = reader.readBytes(count: Int(nodeLength)),
                !node.isEmpty, UTF8Validation.isValid(node), let flags = reader.read(UInt8.self), flags & ~3 == 0
            else { return .failure(FormatError(message: "malformed versioned record")) }
            var expiresAt: Instant?
            if flags & 2 != 0 {
                guard let raw = reader.read(Int64.self) else {
                    return .failure(FormatError(message: "malformed versioned record"))
                }
                expiresAt = Instant(nanosecondsSinceEpoch: raw)
            }
            guard let key = reader.readBytes() else {
                return .failure(FormatError(message: "malformed versioned record"))
            }
            var value: [UInt8]?
            if flags & 1 != 0 {
                guard let bytes = reader.readBytes() else {
                    return .failure(FormatError(message: "malformed versioned record"))
                }
                value = bytes
            }
            guard reader.isAtEnd else { return .failure(FormatError(message: "malformed versioned record")) }
            let version = Version(wall: wall, logical: logical, node: NodeID(String(decoding: node, as: UTF8.self)))
            return .success(
                .versioned(key: key, entry: VersionedEntry(version: version, value: value, expiresAt: expiresAt)))
        case .dropped:
            guard let wall = reader.read(Int64.self), let logical = reader.read(UInt32.self),
                let nodeLength = reader.read(UInt16.self), let node = reader.readBytes(count: Int(nodeLength)),
                !node.isEmpty, UTF8Validation.isValid(node), let key = reader.readBytes(), reader.isAtEnd
            else { return .failure(FormatError(message: "malformed dropped record")) }
            let version = Version(wall: wall, logical: logical, node: NodeID(String(decoding: node, as: UTF8.self)))
            return .success(.dropped(key: key, version: version))
        case .member:
            return decodeMember(&reader)
        case .snapshotEnd, nil:
            return .failure(FormatError(message: "unexpected record kind \(kind)"))
        }
    }

    /// A member record, refused unless every field is one a peer could have said (the same rules as
    /// a member update in a frame): a damaged record must not make up a member.
    static func decodeMember(_ reader: inout BodyReader) -> Result<WALOperation, FormatError> {
        let malformed = Result<WALOperation, FormatError>.failure(FormatError(message: "malformed member record"))
        guard let incarnation = reader.read(UInt64.self), let rawStatus = reader.read(UInt8.self),
            let status = MemberStatus(rawValue: rawStatus)
        else { return malformed }
        var texts: [String] = []
        for _ in 0..<3 {
            guard let length = reader.read(UInt16.self), let bytes = reader.readBytes(count: Int(length)),
                UTF8Validation.isValid(bytes)
            else { return malformed }
            texts.append(String(decoding: bytes, as: UTF8.self))
        }
        guard reader.isAtEnd else { return malformed }
        let update = MemberUpdate(
            id: NodeID(texts[0]), address: texts[1], clientAddress: texts[2], incarnation: incarnation, status: status)
        if let problem = PeerProtocol.problem(with: [update]) {
            return .failure(FormatError(message: "member record: \(problem)"))
        }
        return .success(.member(update))
    }

    static func readInteger<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> T {
        // Every caller checked the length first: a read past the bytes is the decoder's bug.
        assert(offset >= 0 && bytes.count - offset >= MemoryLayout<T>.size, "WALFormat: an integer past the bytes")
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Reads fields off a record body, refusing to run past its end.
    struct BodyReader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        var isAtEnd: Bool { offset == bytes.count }

        mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
            assert(offset <= bytes.count, "BodyReader: read past the body")
            guard bytes.count - offset >= MemoryLayout<T>.size else { return nil }
            defer { offset += MemoryLayout<T>.size }
            return readInteger(T.self, bytes, at: offset)
        }

        /// A `u32` length followed by that many bytes.
        mutating func readBytes() -> [UInt8]? {
            guard let length = read(UInt32.self) else { return nil }
            return readBytes(count: Int(length))
        }

        /// The next `count` bytes.
        mutating func readBytes(count: Int) -> [UInt8]? {
            assert(offset <= bytes.count && count >= 0, "BodyReader: read past the body")
            guard bytes.count - offset >= count else { return nil }
            defer { offset += count }
            return Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
        }
    }
}
