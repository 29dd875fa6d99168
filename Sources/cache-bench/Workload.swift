import Foundation

/// What the load asks for: which operation, which key, which value. Each worker owns one.
struct Workload {
    enum Operation: String, CaseIterable, Sendable {
        case get, put, delete
    }

    enum Distribution: String, CaseIterable, Sendable {
        case uniform, zipfian, sequential
    }

    /// Read, write and delete weights.
    struct Mix: Sendable, Equatable {
        var get: Int
        var put: Int
        var delete: Int

        /// `R:W[:D]`, e.g. `9:1` or `80:15:5`.
        init?(_ text: String) {
            let parts = text.split(separator: ":").map { Int($0) }
            guard (2...3).contains(parts.count), parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
            get = parts[0]!
            put = parts[1]!
            delete = parts.count == 3 ? parts[2]! : 0
            guard get + put + delete > 0 else { return nil }
        }

        var description: String { "\(get):\(put):\(delete)" }
    }

    let keys: Int
    let keyPrefix: String
    let mix: Mix
    let distribution: Distribution
    let values: [String]
    private let zipf: Zipfian?
    private var random: Xoshiro
    /// The next key for `sequential` (this worker's share: it starts at its own offset).
    private var sequence: Int

    init(
        keys: Int, keyPrefix: String, mix: Mix, distribution: Distribution, values: [String], seed: UInt64,
        worker: Int, workers: Int
    ) {
        precondition(keys > 0 && !values.isEmpty, "a workload needs keys and values")
        self.keys = keys
        self.keyPrefix = keyPrefix
        self.mix = mix
        self.distribution = distribution
        self.values = values
        zipf = distribution == .zipfian ? Zipfian(count: keys) : nil
        random = Xoshiro(seed: seed &+ UInt64(worker) &* 0x9E37_79B9_7F4A_7C15)
        sequence = keys / max(1, workers) * worker
    }

    mutating func nextOperation() -> Operation {
        let roll = Int(random.next() % UInt64(mix.get + mix.put + mix.delete))
        if roll < mix.get { return .get }
        if roll < mix.get + mix.put { return .put }
        return .delete
    }

    mutating func nextKey() -> String {
        let index: Int
        switch distribution {
        case .uniform:
            index = Int(random.next() % UInt64(keys))
        case .sequential:
            index = sequence % keys
            sequence += 1
        case .zipfian:
            index = zipf!.next(uniform: random.nextUnit())
        }
        return keyPrefix + String(index)
    }

    mutating func nextValue() -> String {
        values[Int(random.next() % UInt64(values.count))]
    }

    /// `count` values of `sizes` bytes (a range: sizes spread across it), letters and digits.
    static func makeValues(sizes: ClosedRange<Int>, count: Int, seed: UInt64) -> [String] {
        var random = Xoshiro(seed: seed)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        return (0..<count).map { _ in
            let size = sizes.lowerBound + Int(random.next() % UInt64(sizes.count))
            return String(decoding: (0..<size).map { _ in alphabet[Int(random.next() % 62)] }, as: UTF8.self)
        }
    }
}

/// Zipfian ranks as YCSB draws them (Gray et al., "Quickly generating billion-record synthetic
/// databases"), with θ = 0.99, then scattered over the key space by a hash so that the popular keys
/// are not neighbours (YCSB's "scrambled zipfian").
struct Zipfian: Sendable {
    let count: Int
    static let theta = 0.99
    private let zetaN: Double
    private let alpha: Double
    private let eta: Double
    private let halfPowTheta: Double

    init(count: Int) {
        let theta = Self.theta
        self.count = count
        var zeta = 0.0
        for rank in 1...count { zeta += 1 / pow(Double(rank), theta) }
        zetaN = zeta
        let zeta2 = 1 + 1 / pow(2.0, theta)
        alpha = 1 / (1 - theta)
        eta = (1 - pow(2 / Double(count), 1 - theta)) / (1 - zeta2 / zeta)
        halfPowTheta = pow(0.5, theta)
    }

    /// A key index from `uniform` in [0, 1).
    func next(uniform u: Double) -> Int {
        let scaled = u * zetaN
        let rank: Int
        if scaled < 1 {
            rank = 0
        } else if scaled < 1 + halfPowTheta {
            rank = 1
        } else {
            rank = min(count - 1, Int(Double(count) * pow(eta * u - eta + 1, alpha)))
        }
        return Int(Self.fnv1a(UInt64(rank)) % UInt64(count))
    }

    private static func fnv1a(_ value: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var remaining = value
        for _ in 0..<8 {
            hash ^= remaining & 0xFF
            hash &*= 0x0000_0100_0000_01B3
            remaining >>= 8
        }
        return hash
    }
}

/// xoshiro256** (Blackman and Vigna), seeded by SplitMix64: fast, and good enough for choosing keys.
struct Xoshiro: Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var splitmix = seed
        func next() -> UInt64 {
            splitmix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitmix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
