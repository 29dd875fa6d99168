import Testing

@testable import CacheCore

@Suite("WAL record sizes")
struct WALRecordSizeTests {
    @Test(arguments: 0..<5)
    func theComputedSizeIsTheEncodedSize(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for sequence in 1...200 {
            let record = WALRecord(sequence: UInt64(sequence), operation: randomOperation(&random))
            #expect(WALFormat.encodedSize(of: record.operation) == WALFormat.encode(record).count)
        }
    }

    /// The largest record a node writes (a 1 KiB key, a 1 MiB value, an expiry, versioned by a node
    /// with the longest name) is one the reader takes back. The bound once left room for names of 24
    /// bytes only: a longer `NODE_ID` (a Kubernetes pod's DNS name) wrote records recovery refused.
    @Test func theLargestRecordANodeWritesIsReadBack() throws {
        let node = NodeID(String(repeating: "n", count: NodeID.maximumLength))
        let entry = VersionedEntry(
            version: Version(wall: .max, logical: .max, node: node),
            value: [UInt8](repeating: 7, count: StoreLimits.defaultMaxValueBytes),
            expiresAt: Instant(nanosecondsSinceEpoch: .max))
        let key = [UInt8](repeating: 0x6B, count: StoreLimits.defaultMaxKeyBytes)
        let record = WALRecord(sequence: 1, operation: .versioned(key: key, entry: entry))
        let bytes = WALFormat.encode(record)
        let step = bytes.withUnsafeBytes { WALFormat.decode($0, at: 0) }
        #expect(step == .record(record, next: bytes.count))
    }
}
