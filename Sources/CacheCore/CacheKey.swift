/// A cache key: the exact UTF-8 bytes the client sent, compared byte for byte.
///
/// Keys are bytes rather than `String` because `String` equality is Unicode canonical
/// equivalence: two different byte sequences ("é" precomposed and decomposed) would otherwise
/// name the same entry, and a key read back would not be the key that was written.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    /// The key's UTF-8 bytes.
    public let bytes: [UInt8]

    /// Wraps bytes that are already known to be a valid key.
    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) {
        self.bytes = Array(string.utf8)
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
