import Testing

@testable import CacheCore

/// Random operation sequences checked against the simplest model: a dictionary with expiry.
@Suite("Store against a dictionary model")
struct StorePropertyTests {
    private struct ModelEntry {
        var value: [UInt8]
        var expiresAt: Instant?
        func isLive(at now: Instant) -> Bool { expiresAt.map { now < $0 } ?? true }
    }

    /// With no entry or memory limit the store must agree with the model on every single read.
    @Test(arguments: 0..<20)
    func agreesWithModelWithoutLimits(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var store = CacheStore(limits: StoreLimits(), policy: SampledLRU(), seed: seed)
        var model: [CacheKey: ModelEntry] = [:]
        var now = Instant(nanosecondsSinceEpoch: 1_000_000_000_000)
        for step in 0..<3000 {
            now = now.advanced(byNanoseconds: Int64(random.below(300_000_000)))
            let key = CacheKey("k\(random.below(40))")
            switch random.below(10) {
            case 0..<4:
                let value = Array("v\(step)".utf8)
                let expiry: Instant? =
                    random.below(3) == 0 ? nil : now.advanced(byNanoseconds: Int64(random.below(3_000_000_000)))
                #expect(store.put(key, value: value, expiresAt: expiry, now: now) == .stored(evicted: 0))
                model[key] = ModelEntry(value: value, expiresAt: expiry)
            case 4..<8:
                let expected: CacheStore.GetResult =
                    if let entry = model[key], entry.isLive(at: now) {
                        .hit(value: entry.value, expiresAt: entry.expiresAt)
                    } else {
                        .miss
                    }
                #expect(store.get(key, now: now) == expected, "seed \(seed) step \(step)")
            case 8:
                let expected: CacheStore.DeleteResult = model[key]?.isLive(at: now) == true ? .deleted : .notFound
                #expect(store.delete(key, now: now) == expected, "seed \(seed) step \(step)")
                model[key] = nil
            default:
                store.sweepExpired(now: now)
            }
            let liveInModel = model.values.filter { $0.isLive(at: now) }.count
            #expect(store.statistics.entries >= liveInModel, "seed \(seed) step \(step)")
        }
    }

    /// With limits, the store may forget entries but never serves a wrong or expired value, and never
    /// holds more than its limits allow.
    @Test(arguments: 0..<20)
    func neverServesWrongValuesUnderEviction(seed: UInt64) {
        var random = SplitMix64(seed: seed &+ 1000)
        let limits = StoreLimits(maxEntries: 25, maxMemoryBytes: 25 * 150)
        var store = CacheStore(limits: limits, policy: SampledLRU(), seed: seed)
        var model: [CacheKey: ModelEntry] = [:]
        var now = Instant(nanosecondsSinceEpoch: 1_000_000_000_000)
        for step in 0..<3000 {
            now = now.advanced(byNanoseconds: Int64(random.below(100_000_000)))
            let key = CacheKey("k\(random.below(60))")
            switch random.below(3) {
            case 0:
                let value = [UInt8](repeating: UInt8(truncatingIfNeeded: step), count: Int(random.below(40)))
                let expiry: Instant? = random.below(2) == 0 ? nil : now.advanced(bySeconds: 1)
                _ = store.put(key, value: value, expiresAt: expiry, now: now)
                model[key] = ModelEntry(value: value, expiresAt: expiry)
            case 1:
                if case .hit(let value, let expiresAt) = store.get(key, now: now) {
                    guard let entry = model[key] else {
                        Issue.record("seed \(seed) step \(step): served a key never written")
                        continue
                    }
                    #expect(entry.isLive(at: now), "seed \(seed) step \(step): served an expired entry")
                    #expect(value == entry.value && expiresAt == entry.expiresAt, "seed \(seed) step \(step)")
                }
            default:
                _ = store.delete(key, now: now)
                model[key] = nil
            }
            #expect(store.statistics.entries <= 25)
            #expect(store.memoryUsage <= 25 * 150)
        }
    }
}
