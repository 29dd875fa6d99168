import Testing

@testable import CacheCore

@Suite("WAL and snapshot codecs")
struct WALCodecTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        let whole = CRC32C.checksum(Array("hello, world".utf8))
        let first = CRC32C.checksum(Array("hello, ".utf8))
        #expect(Array("world".utf8).withUnsafeBytes { CRC32C.checksum($0, continuing: first) } == whole)
    }

    @Test(arguments: 0..<10)
    func randomRecordSequencesRoundTrip(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let records = (1...200).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let (decoded, result) = scan(segment(records))
        #expect(decoded == records)
        #expect(result.stop == nil)
        #expect(result.lastSequence == 200)
    }

    @Test func everyPrefixRecoversExactlyTheWholeRecordsInsideIt() {
        var random = SplitMix64(seed: 7)
        let records = (1...30).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let bytes = segment(records)
        // Where each record ends.
        var ends: [Int] = []
        var offset = WALSegment.headerSize
        for record in records {
            offset += WALFormat.encode(record).count
            ends.append(offset)
        }
        for length in 0...bytes.count {
            let (decoded, result) = scan(Array(bytes[..<length]))
            let whole = ends.filter { $0 <= length }.count
            #expect(decoded == Array(records.prefix(whole)), "prefix \(length)")
            if length >= WALSegment.headerSize {
                #expect(result.validLength == (whole == 0 ? WALSegment.headerSize : ends[whole - 1]))
            }
            let atBoundary = length == WALSegment.headerSize || ends.contains(length)
            #expect((result.stop == nil) == atBoundary, "prefix \(length): \(String(describing: result.stop))")
        }
    }

    @Test func flippingAnyByteIsDetected() {
        var random = SplitMix64(seed: 11)
        let records = (1...12).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let bytes = segment(records)
        var starts: [Int] = []
        var offset = WALSegment.headerSize
        for record in records {
            starts.append(offset)
            offset += WALFormat.encode(record).count
        }
        for position in 0..<bytes.count {
            for bit in [0, 3, 7] {
                var damaged = bytes
                damaged[position] ^= 1 << bit
                let (decoded, result) = scan(damaged)
                #expect(result.stop != nil, "flip at \(position) bit \(bit) went unnoticed")
                // Every record before the damaged one survives, none after it is returned.
                let damagedRecord = starts.lastIndex(where: { $0 <= position }) ?? -1
                let intact = max(0, damagedRecord)
                #expect(decoded == Array(records.prefix(intact)), "flip at \(position)")
            }
        }
    }

    @Test func outOfOrderSequencesAreCorrupt() {
        let records = [
            WALRecord(sequence: 5, operation: .delete(key: [1])), WALRecord(sequence: 4, operation: .delete(key: [2])),
        ]
        let (decoded, result) = scan(segment(records, firstSequence: 5))
        #expect(decoded.count == 1)
        guard case .corrupt = result.stop else {
            Issue.record("expected corrupt, got \(String(describing: result.stop))")
            return
        }
    }

    @Test func oversizedLengthIsCorruptNotATrap() {
        var bytes = WALSegment.header(firstSequence: 1)
        bytes += [0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 32)
        let (decoded, result) = scan(bytes)
        #expect(decoded.isEmpty)
        #expect(result.stop == .corrupt(offset: WALSegment.headerSize, reason: "record length 2147483647 out of range"))
    }

    @Test func snapshotRoundTripsAndMustBeWhole() throws {
        var entries: [(key: [UInt8], entry: VersionedEntry)] = []
        for index in 0..<50 {
            let version = Version(wall: Int64(index), logical: UInt32(index % 3), node: NodeID("n\(index % 4)"))
            let expiry: Instant? = index % 3 == 0 ? now.advanced(bySeconds: 60) : nil
            let value: [UInt8]? = index % 5 == 0 ? nil : Array("v\(index)".utf8)
            entries.append((Array("k\(index)".utf8), VersionedEntry(version: version, value: value, expiresAt: expiry)))
        }
        let bytes = SnapshotFormat.encode(sequence: 99, entries: entries)
        var loaded: [WALOperation] = []
        let result = bytes.withUnsafeBytes { bytes in SnapshotFormat.read(bytes) { loaded.append($0) } }
        let header = try result.get()
        #expect(header.sequence == 99 && header.entries == 50)
        #expect(loaded == entries.map { .versioned(key: $0.key, entry: $0.entry) })
        // Any strict prefix is refused: a snapshot without its end record is not a snapshot.
        for length in stride(from: 0, to: bytes.count, by: 7) {
            let prefix = Array(bytes[..<length])
            let partial = prefix.withUnsafeBytes { SnapshotFormat.read($0) { _ in } }
            #expect(throws: ScanStop.self) { try partial.get() }
        }
    }

    /// A member record a peer could not have sent (a status, name or address out of range) is
    /// corrupt: a damaged log must not make up a member.
    @Test func memberRecordsRoundTripAndRefuseWhatAPeerCouldNotSay() {
        let member = MemberUpdate(
            id: NodeID("node-b"), address: "10.0.0.2:7946", clientAddress: "10.0.0.2:8080", incarnation: 7,
            status: .dead)
        let record = WALRecord(sequence: 3, operation: .member(member))
        let bytes = WALFormat.encode(record)
        #expect(bytes.count == WALFormat.encodedSize(of: record.operation))
        #expect(scan(segment([record], firstSequence: 3)).0 == [record])
        func corrupted(_ update: MemberUpdate, status: UInt8? = nil) -> WALDecodeStep {
            // Encoded by hand: the encoder asserts what the decoder checks.
            var body = [UInt8]()
            WALFormat.appendInteger(update.incarnation, to: &body)
            body.append(status ?? update.status.rawValue)
            for text in [update.id.rawValue, update.address, update.clientAddress] {
                WALFormat.appendInteger(UInt16(text.utf8.count), to: &body)
                body += Array(text.utf8)
            }
            var payload = [UInt8]()
            WALFormat.appendInteger(UInt64(1), to: &payload)
            payload.append(6)
            payload += body
            var framed = [UInt8]()
            WALFormat.appendInteger(UInt32(payload.count), to: &framed)
            let crc = CRC32C.checksum(Array(framed) + payload)
            WALFormat.appendInteger(crc, to: &framed)
            framed += payload
            return framed.withUnsafeBytes { WALFormat.decode($0, at: 0) }
        }
        guard case .record(let decoded, _) = corrupted(member) else {
            Issue.record("a valid hand-made member record was refused")
            return
        }
        #expect(decoded.operation == .member(member))
        var badAddress = member
        badAddress.address = "nowhere"
        var badName = member
        badName.id = NodeID("")
        var badIncarnation = member
        badIncarnation.incarnation = Membership.maximumIncarnation + 1
        for step in [
            corrupted(member, status: 4), corrupted(badAddress), corrupted(badName), corrupted(badIncarnation),
        ] {
            guard case .corrupt = step else {
                Issue.record("accepted: \(step)")
                continue
            }
        }
    }

    @Test func snapshotsCarryMembersBeforeTheirEntries() throws {
        let members = [
            MemberUpdate(id: NodeID("a"), address: "a:7000", incarnation: 1, status: .alive),
            MemberUpdate(id: NodeID("b"), address: "b:7000", incarnation: 4, status: .left),
        ]
        let entry = VersionedEntry(version: Version(wall: 1, logical: 0, node: NodeID("a")), value: [1], expiresAt: nil)
        let bytes = SnapshotFormat.encode(sequence: 5, members: members, entries: [(Array("k".utf8), entry)])
        var loaded: [WALOperation] = []
        let result = bytes.withUnsafeBytes { bytes in SnapshotFormat.read(bytes) { loaded.append($0) } }
        #expect(try result.get().entries == 3)
        #expect(loaded == members.map { .member($0) } + [.versioned(key: Array("k".utf8), entry: entry)])
    }
}
