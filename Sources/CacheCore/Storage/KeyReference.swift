/// A key's bytes and its ring position, hashed once per request and reused by the ring, the store's
/// table and the anti-entropy buckets.
public struct KeyReference: Sendable, Hashable, CustomStringConvertible {
    /// The key's UTF-8 bytes.
    public let bytes: [UInt8]
    /// The key's position on the ring (`HashRing.position(ofKey:)`).
    public let position: UInt64

    /// The reference to `bytes`.
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = HashRing.position(ofKey: bytes)
    }

    /// The reference to `key`.
    public init(_ key: CacheKey) {
        self.init(key.bytes)
    }

    /// The top 32 bits of the position: the store's table orders and finds keys by it.
    var hash: UInt32 { UInt32(truncatingIfNeeded: position >> 32) }

    /// The anti-entropy bucket: the top 10 bits of the position.
    var digestBucket: Int { Int(position >> 54) }

    public static func == (lhs: KeyReference, rhs: KeyReference) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(position) }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
