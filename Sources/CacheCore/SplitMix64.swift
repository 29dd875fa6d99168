/// A small, fast, seedable random number generator (Steele, Lea and Flood's SplitMix64).
///
/// CacheCore owns its generator so that its sequence never changes under it: the same seed gives
/// the same sampling and eviction choices on every platform and every run, which is what the
/// simulator's replay depends on.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator whose whole sequence is decided by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform draw from `0..<bound`; `bound` must be positive.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.below needs a positive bound")
        return Int(next(upperBound: UInt64(bound)))
    }

    /// A uniform draw from `0..<1`, with the 53 bits a `Double` holds.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) / Double(UInt64(1) << 53)
    }

    /// A generator for a named subsystem, derived from this one's seed without consuming from it,
    /// so that adding draws in one subsystem does not shift the others.
    public func derived(stream: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: state ^ (stream &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}
