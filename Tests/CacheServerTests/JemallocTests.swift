import CacheCore
import Foundation
import Testing

@testable import CacheServer

@Suite("jemalloc")
struct JemallocTests {
    @Test func allocatedBytesGrowWhenTheStoreGrows() throws {
        #expect(try #require(Jemalloc.allocatedBytes()) > 0)
        // The process-wide figure moves with every other test's allocations and frees (it once fell
        // short while others freed); the thread's own count sees exactly what this loop allocates.
        let before = try #require(Jemalloc.threadAllocatedBytes())
        var store = ReplicaStore()
        let now = Instant(nanosecondsSinceEpoch: 0)
        let version = Version(wall: 1, logical: 0, node: NodeID("n"))
        for index in 0..<64 {
            let value = [UInt8](repeating: 97, count: 512 * 1024)
            store.apply(
                KeyReference(Array("k\(index)".utf8)), VersionedEntry(version: version, value: value, expiresAt: nil),
                now: now)
        }
        let after = try #require(Jemalloc.threadAllocatedBytes())
        // 32 MiB of values went in, through Swift's allocations, which jemalloc counts.
        #expect(after - before >= 30 << 20, "before \(before), after \(after)")
        withExtendedLifetime(store) {}
    }
}
