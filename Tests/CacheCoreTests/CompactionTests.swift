import Testing

@testable import CacheCore

@Suite("Compaction")
struct CompactionTests {
    /// A snapshot up to 20 replaces the segments that start at or before 20 and older snapshots; the
    /// segment that starts after it and the snapshot itself stay.
    @Test func aSnapshotMakesTheFilesItCoversObsolete() {
        let obsolete = Compaction.obsolete(segments: [21, 1, 11], snapshots: [20, 10, 5], coveredBy: 20)
        #expect(obsolete.segments == [1, 11])
        #expect(obsolete.snapshots == [5, 10])
        #expect(Compaction.obsolete(segments: [1], snapshots: [], coveredBy: 0) == ([], []))
    }
}
