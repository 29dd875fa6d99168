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
}
