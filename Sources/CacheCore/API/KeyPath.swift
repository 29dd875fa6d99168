/// Turns the key segment of a request path (`/get/{key}`) into the key's bytes.
///
/// Clients percent-encode keys, so a key may hold `/`, `?`, `%` and spaces. The segment is decoded
/// exactly once: `%2F` becomes `/` inside the key and never splits the route, and `%252F` becomes
/// the three characters `%2F`. `+` is a literal plus, as in any path (it means space only in forms).
public enum KeyPath {
    /// Decodes a percent-encoded path segment into a non-empty UTF-8 key.
    public static func decode(_ segment: some Collection<UInt8>) -> Result<[UInt8], RequestError> {
        var key: [UInt8] = []
        key.reserveCapacity(segment.count)
        var iterator = segment.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                key.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return .failure(RequestError(.badRequest, "key has a malformed percent-escape; encode '%' as %25"))
            }
            key.append(high << 4 | low)
        }
        if key.isEmpty { return .failure(RequestError(.badRequest, "key must not be empty")) }
        guard UTF8Validation.isValid(key) else {
            return .failure(RequestError(.badRequest, "key is not valid UTF-8 once percent-decoded"))
        }
        return .success(key)
    }

    /// Percent-encodes `key` for use as one path segment: every byte outside RFC 3986's unreserved set.
    public static func encode(_ key: some Collection<UInt8>) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var encoded: [UInt8] = []
        encoded.reserveCapacity(key.count)
        for byte in key {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.append(byte)
            default:
                encoded.append(UInt8(ascii: "%"))
                encoded.append(hex[Int(byte >> 4)])
                encoded.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// The value of one hexadecimal digit (either case), `nil` for any other byte.
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
