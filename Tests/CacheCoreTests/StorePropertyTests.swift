import Testing

@testable import CacheCore

/// Random request sequences against a node alone, checked against the simplest model: a dictionary
/// with expiry.
@Suite("A node alone against a dictionary model")
struct StorePropertyTests {
    private struct ModelEntry {
        var value: [UInt8]
        var expiresAt: Instant?
        func isLive(at now: Instant) -> Bool { expiresAt.map { now < $0 } ?? true }
    }

    /// With no entry or memory limit the node must agree with the model on every single read.
    @Test(arguments: 0..<20)
    func agreesWithModelWithoutLimits(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var node = StandaloneNode(seed: seed, now: Instant(nanosecondsSinceEpoch: 1_000_000_000_000))
        var model: [String: ModelEntry] = [:]
        for step in 0..<3000 {
            let elapsed = Duration.nanoseconds(Int64(random.below(300_000_000)))
            let key = "k\(random.below(40))"
            switch random.below(10) {
            case 0..<4:
                node.now = node.now.advanced(by: elapsed)
                let value = Array("v\(step)".utf8)
                let ttl: Duration? = random.below(3) == 0 ? nil : .nanoseconds(Int64(random.below(3_000_000_000)))
                #expect(node.put(Array(key.utf8), value, ttl: ttl.map { .after($0) } ?? .never)?.isStored == true)
                model[key] = ModelEntry(value: value, expiresAt: ttl.map { node.now.advanced(by: $0) })
            case 4..<8:
                node.now = node.now.advanced(by: elapsed)
                let outcome = node.get(key)
                if let entry = model[key], entry.isLive(at: node.now) {
                    guard case .found(let stored) = outcome else {
                        Issue.record("seed \(seed) step \(step): \(key) not found")
                        continue
                    }
                    #expect(
                        stored.value == entry.value && stored.expiresAt == entry.expiresAt, "seed \(seed) step \(step)")
                } else {
                    #expect(outcome == .notFound, "seed \(seed) step \(step)")
                }
            case 8:
                node.now = node.now.advanced(by: elapsed)
                guard case .deleted(let existed, _) = node.delete(key) else {
                    Issue.record("seed \(seed) step \(step): delete refused")
                    continue
                }
                #expect(existed == (model[key]?.isLive(at: node.now) == true), "seed \(seed) step \(step)")
                model[key] = nil
            default:
                node.advance(by: elapsed)
            }
            let liveInModel = model.values.filter { $0.isLive(at: node.now) }.count
            #expect(node.node.statistics.entries >= liveInModel, "seed \(seed) step \(step)")
            #expect(node.node.statistics.tombstones == 0, "a node alone keeps no tombstones")
        }
    }

    /// With limits, the node may forget entries but never serves a wrong or expired value, and never
    /// holds more than its limits allow.
    @Test(arguments: 0..<20)
    func neverServesWrongValuesUnderEviction(seed: UInt64) {
        var random = SplitMix64(seed: seed &+ 1000)
        let limits = StoreLimits(maximumEntries: 25, maximumMemoryBytes: 25 * 150)
        var node = StandaloneNode(limits: limits, seed: seed, now: Instant(nanosecondsSinceEpoch: 1_000_000_000_000))
        var model: [String: ModelEntry] = [:]
        for step in 0..<3000 {
            node.now = node.now.advanced(byNanoseconds: Int64(random.below(100_000_000)))
            let key = "k\(random.below(60))"
            switch random.below(3) {
            case 0:
                let value = [UInt8](repeating: 97, count: Int(random.below(40)))
                let ttl: Duration? = random.below(2) == 0 ? nil : .seconds(1)
                _ = node.put(Array(key.utf8), value, ttl: ttl.map { .after($0) } ?? .never)
                model[key] = ModelEntry(value: value, expiresAt: ttl.map { node.now.advanced(by: $0) })
            case 1:
                if case .found(let stored) = node.get(key) {
                    guard let entry = model[key] else {
                        Issue.record("seed \(seed) step \(step): served a key never written")
                        continue
                    }
                    #expect(entry.isLive(at: node.now), "seed \(seed) step \(step): served an expired entry")
                    #expect(
                        stored.value == entry.value && stored.expiresAt == entry.expiresAt, "seed \(seed) step \(step)")
                }
            default:
                _ = node.delete(key)
                model[key] = nil
            }
            #expect(node.node.statistics.entries <= 25)
            #expect(node.node.store.memoryUsage <= 25 * 150)
        }
    }
}
