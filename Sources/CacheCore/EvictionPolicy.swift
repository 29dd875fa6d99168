/// Chooses which entry a full store gives up.
///
/// The store keeps every entry's last access tick itself; a policy that needs more (a frequency
/// sketch for W-TinyLFU, say) keeps it in its own state, fed through ``recordAccess(to:)``.
public protocol EvictionPolicy: Sendable {
    /// Observes a read or write of `key`.
    mutating func recordAccess(to key: CacheKey)

    /// The position of the entry to evict; `table` is never empty.
    mutating func victim(in table: EntryTable, using random: inout SplitMix64) -> Int
}

extension EvictionPolicy {
    public mutating func recordAccess(to key: CacheKey) {}
}

/// Redis-style approximated LRU: sample a few random entries and evict the least recently used.
public struct SampledLRU: EvictionPolicy {
    /// Entries examined per eviction; Redis's default of 5 is close to true LRU in practice.
    public var sampleSize: Int

    /// Creates the policy; `sampleSize` must be at least 1.
    public init(sampleSize: Int = 5) {
        precondition(sampleSize >= 1, "SampledLRU needs a sample of at least one entry")
        self.sampleSize = sampleSize
    }

    public mutating func victim(in table: EntryTable, using random: inout SplitMix64) -> Int {
        var best = table.randomPosition(using: &random)
        var bestTick = table[best].lastAccess
        for _ in 1..<min(sampleSize, table.count) {
            let candidate = table.randomPosition(using: &random)
            let tick = table[candidate].lastAccess
            if tick < bestTick {
                best = candidate
                bestTick = tick
            }
        }
        return best
    }
}
