import CacheCore

let now = Instant(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)

func randomOperation(_ random: inout SplitMix64) -> WALOperation {
    let key = (0..<random.below(12) + 1).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    if random.below(4) == 0 { return .delete(key: key) }
    let value = (0..<random.below(64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    let expiresAt: Instant? =
        random.below(2) == 0 ? nil : Instant(nanosecondsSinceEpoch: Int64(bitPattern: random.next()))
    if random.below(3) == 0 {
        let version = Version(
            wall: Int64(bitPattern: random.next()), logical: UInt32(truncatingIfNeeded: random.next()),
            node: NodeID("node-\(random.below(100))"))
        if random.below(4) == 0 { return .dropped(key: key, version: version) }
        if random.below(5) == 0 { return .member(randomMember(&random)) }
        return .versioned(
            key: key,
            entry: VersionedEntry(version: version, value: random.below(4) == 0 ? nil : value, expiresAt: expiresAt))
    }
    return .put(key: key, value: value, expiresAt: expiresAt)
}

/// A member record's claim with every field in range.
func randomMember(_ random: inout SplitMix64) -> MemberUpdate {
    let statuses: [MemberStatus] = [.alive, .dead, .left]
    return MemberUpdate(
        id: NodeID("node-\(random.below(100))"),
        address: "10.0.\(random.below(256)).\(random.below(256)):\(1 + random.below(65535))",
        clientAddress: random.below(3) == 0 ? "" : "host-\(random.below(9)).example:8080",
        incarnation: UInt64(random.below(1 << 20)), status: statuses[random.below(statuses.count)])
}

func segment(_ records: [WALRecord], firstSequence: UInt64 = 1) -> [UInt8] {
    var bytes = WALSegment.header(firstSequence: firstSequence)
    for record in records { WALFormat.encode(record, into: &bytes) }
    return bytes
}

func scan(_ bytes: [UInt8]) -> ([WALRecord], WALSegment.Scan) {
    var records: [WALRecord] = []
    let result = bytes.withUnsafeBytes { WALSegment.scan($0) { records.append($0) } }
    return (records, result)
}
