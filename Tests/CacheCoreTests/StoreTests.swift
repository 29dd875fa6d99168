import Testing

@testable import CacheCore

private let t0 = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)

private func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

private func makeStore(_ limits: StoreLimits = StoreLimits(), seed: UInt64 = 1) -> CacheStore {
    CacheStore(limits: limits, policy: SampledLRU(), seed: seed)
}

@Suite("Store transitions")
struct StoreTests {
    @Test func getOfAbsentKeyIsAMiss() {
        var store = makeStore()
        #expect(store.get(CacheKey("a"), now: t0) == .miss)
        #expect(store.statistics.misses == 1)
        #expect(store.statistics.gets == 1)
    }

    @Test func putThenGetReturnsValueAndExpiry() {
        var store = makeStore()
        let expiry = t0.advanced(bySeconds: 10)
        #expect(store.put(CacheKey("a"), value: bytes("1"), expiresAt: expiry, now: t0) == .stored(evicted: 0))
        #expect(store.get(CacheKey("a"), now: t0) == .hit(value: bytes("1"), expiresAt: expiry))
        #expect(store.statistics.hits == 1)
        #expect(store.statistics.entries == 1)
    }

    @Test func putReplacesValueAndKeepsAccountingExact() {
        var store = makeStore()
        _ = store.put(CacheKey("a"), value: bytes("short"), expiresAt: nil, now: t0)
        _ = store.put(CacheKey("a"), value: bytes("a longer value"), expiresAt: nil, now: t0)
        #expect(store.get(CacheKey("a"), now: t0) == .hit(value: bytes("a longer value"), expiresAt: nil))
        #expect(store.statistics.entries == 1)
        #expect(store.statistics.estimatedBytes == 1 + 14 + CacheStore.entryOverheadBytes)
        #expect(store.statistics.evictions == 0)
    }

    @Test func keysAreComparedByBytesNotCanonicalEquivalence() {
        var store = makeStore()
        let precomposed = CacheKey(bytes: [0xC3, 0xA9])  // é
        let decomposed = CacheKey(bytes: [0x65, 0xCC, 0x81])  // e + combining acute
        _ = store.put(precomposed, value: bytes("1"), expiresAt: nil, now: t0)
        #expect(store.get(decomposed, now: t0) == .miss)
    }

    @Test func deleteRemovesAndReportsAbsence() {
        var store = makeStore()
        _ = store.put(CacheKey("a"), value: bytes("1"), expiresAt: nil, now: t0)
        #expect(store.delete(CacheKey("a"), now: t0) == .deleted)
        #expect(store.delete(CacheKey("a"), now: t0) == .notFound)
        #expect(store.get(CacheKey("a"), now: t0) == .miss)
        #expect(store.statistics.entries == 0)
        #expect(store.statistics.estimatedBytes == 0)
    }

    @Test func expiredEntryIsNotServedAndIsReclaimedOnAccess() {
        var store = makeStore()
        let expiry = t0.advanced(bySeconds: 5)
        _ = store.put(CacheKey("a"), value: bytes("1"), expiresAt: expiry, now: t0)
        #expect(store.get(CacheKey("a"), now: expiry.advanced(byNanoseconds: -1)) != .miss)
        #expect(store.get(CacheKey("a"), now: expiry) == .miss)
        #expect(store.statistics.expirations == 1)
        #expect(store.statistics.entries == 0)
    }

    @Test func deleteOfExpiredEntryIsNotFound() {
        var store = makeStore()
        _ = store.put(CacheKey("a"), value: bytes("1"), expiresAt: t0.advanced(bySeconds: 1), now: t0)
        #expect(store.delete(CacheKey("a"), now: t0.advanced(bySeconds: 2)) == .notFound)
        #expect(store.statistics.expirations == 1)
        #expect(store.statistics.entries == 0)
    }

    @Test func sweepReclaimsExpiredEntriesWithoutTouchingLiveOnes() {
        var store = makeStore()
        for i in 0..<1000 {
            let expiry: Instant? = i % 2 == 0 ? t0.advanced(bySeconds: 1) : nil
            _ = store.put(CacheKey("k\(i)"), value: bytes("v"), expiresAt: expiry, now: t0)
        }
        let later = t0.advanced(bySeconds: 2)
        var expired = 0
        for _ in 0..<200 { expired += store.sweepExpired(now: later) }
        #expect(expired == 500)
        #expect(store.statistics.entries == 500)
        #expect(store.statistics.expirations == 500)
        for i in stride(from: 1, to: 1000, by: 2) {
            #expect(store.get(CacheKey("k\(i)"), now: later) != .miss)
        }
    }

    @Test func sweepWorkIsBoundedPerCall() {
        var store = makeStore()
        for i in 0..<10_000 {
            _ = store.put(CacheKey("k\(i)"), value: [], expiresAt: t0.advanced(bySeconds: 1), now: t0)
        }
        let expired = store.sweepExpired(now: t0.advanced(bySeconds: 2), sampleSize: 20, maxRounds: 16)
        #expect(expired > 0)
        #expect(expired <= 20 * 16)
    }

    @Test func entryLimitEvictsLeastRecentlyUsedFirst() {
        var store = makeStore(StoreLimits(maxEntries: 3))
        for name in ["a", "b", "c"] { _ = store.put(CacheKey(name), value: bytes(name), expiresAt: nil, now: t0) }
        // Touch "a" so that "b" is the oldest; with 3 entries and a sample of 5 the choice is exact.
        _ = store.get(CacheKey("a"), now: t0)
        #expect(store.put(CacheKey("d"), value: bytes("d"), expiresAt: nil, now: t0) == .stored(evicted: 1))
        #expect(store.get(CacheKey("b"), now: t0) == .miss)
        #expect(store.statistics.entries == 3)
        #expect(store.statistics.evictions == 1)
    }

    @Test func memoryLimitEvictsRatherThanRefuses() {
        let perEntry = 1 + 100 + CacheStore.entryOverheadBytes
        var store = makeStore(StoreLimits(maxMemoryBytes: perEntry * 10))
        for i in 0..<10 {
            let value = [UInt8](repeating: 1, count: 100)
            #expect(store.put(CacheKey("\(i)"), value: value, expiresAt: nil, now: t0) == .stored(evicted: 0))
        }
        for i in 0..<50 {
            _ = store.put(CacheKey("x\(i)"), value: [UInt8](repeating: 1, count: 99), expiresAt: nil, now: t0)
            #expect(store.memoryUsage <= perEntry * 10)
        }
        #expect(store.statistics.evictions > 0)
    }

    @Test func allocatorReportCorrectsTheEstimateAndEvicts() {
        let perEntry = 2 + 10 + CacheStore.entryOverheadBytes
        var store = makeStore(StoreLimits(maxMemoryBytes: 100 * perEntry))
        for i in 10..<60 {
            _ = store.put(CacheKey("\(i)"), value: [UInt8](repeating: 0, count: 10), expiresAt: nil, now: t0)
        }
        #expect(store.statistics.entries == 50)
        // The allocator says the process uses 80 entries' worth more than the store estimates.
        let evicted = store.allocatorReported(allocatedBytes: store.statistics.estimatedBytes + 80 * perEntry)
        #expect(evicted == 30)
        #expect(store.statistics.entries == 20)
        #expect(store.memoryUsage <= 100 * perEntry)
    }

    @Test(arguments: [
        (CacheKey(""), 1, Store<SampledLRU>.PutRejection.emptyKey),
        (CacheKey(bytes: [UInt8](repeating: 0x61, count: 1025)), 1, .keyTooLarge(bytes: 1025, limit: 1024)),
        (CacheKey("k"), (1 << 20) + 1, .valueTooLarge(bytes: (1 << 20) + 1, limit: 1 << 20)),
    ])
    func invalidPutsAreRejectedAndChangeNothing(key: CacheKey, valueCount: Int, rejection: CacheStore.PutRejection) {
        var store = makeStore()
        let result = store.put(key, value: [UInt8](repeating: 0, count: valueCount), expiresAt: nil, now: t0)
        #expect(result == .rejected(rejection))
        #expect(store.statistics == StoreStatistics())
    }

    @Test func limitsAtTheBoundaryAreAccepted() {
        var store = makeStore()
        let key = CacheKey(bytes: [UInt8](repeating: 0x61, count: 1024))
        let result = store.put(key, value: [UInt8](repeating: 0, count: 1 << 20), expiresAt: nil, now: t0)
        #expect(result == .stored(evicted: 0))
    }

    @Test func entryLargerThanMemoryLimitIsRefused() {
        var store = makeStore(StoreLimits(maxMemoryBytes: 1000))
        _ = store.put(CacheKey("keep"), value: bytes("v"), expiresAt: nil, now: t0)
        let result = store.put(CacheKey("big"), value: [UInt8](repeating: 0, count: 2000), expiresAt: nil, now: t0)
        #expect(result == .rejected(.exceedsMemoryLimit(bytes: 3 + 2000 + CacheStore.entryOverheadBytes, limit: 1000)))
        #expect(store.get(CacheKey("keep"), now: t0) != .miss)
    }

    @Test func sameSeedSameEventsSameState() {
        func run(seed: UInt64) -> [StoredEntry] {
            var store = makeStore(StoreLimits(maxEntries: 50), seed: seed)
            for i in 0..<500 {
                _ = store.put(CacheKey("k\(i % 97)"), value: bytes("\(i)"), expiresAt: nil, now: t0)
                _ = store.get(CacheKey("k\((i * 7) % 97)"), now: t0)
            }
            return store.entries
        }
        #expect(run(seed: 42) == run(seed: 42))
        #expect(run(seed: 42) != run(seed: 43))
    }
}
