/// One answer in the Redis protocol, before it is encoded for the connection's protocol version.
///
/// RESP3 types that RESP2 lacks are written the RESP2 way on a RESP2 connection: a map as a flat
/// array of keys and values, a null as the null bulk string, a boolean as an integer, a double as a
/// bulk string, a verbatim string as a bulk string.
public enum RESPReply: Sendable {
    /// `+OK`: a short status line (no CR or LF).
    case simple(String)
    /// `-ERR …`: the message starts with its error code (`ERR`, `WRONGTYPE`, `NOAUTH`, …).
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    /// A stored value, shared with the store rather than copied.
    case value(StoredEntry)
    case null
    /// The null of an array reply (`*-1` in RESP2), as `SET … GET` and `MGET` items use `null`.
    case nullArray
    case array([RESPReply])
    case map([(RESPReply, RESPReply)])
    case boolean(Bool)
    case double(Double)
    /// A text meant for people (`INFO`); `=len\r\ntxt:` in RESP3.
    case verbatim(String)

    public static let ok = RESPReply.simple("OK")

    /// A bulk string of `text`'s UTF-8 bytes.
    public static func bulk(_ text: String) -> RESPReply { .bulk(Array(text.utf8)) }

    /// Appends the reply's bytes for protocol `version` (2 or 3) to `output`.
    public func encode<Output: RESPOutput>(version: Int, into output: inout Output) {
        switch self {
        case .simple(let text):
            output.appendByte(UInt8(ascii: "+"))
            output.appendString(text)
            output.appendCRLF()
        case .error(let text):
            output.appendByte(UInt8(ascii: "-"))
            // An error line must stay one line, whatever a message quotes.
            var line = text
            if line.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
                line = String(decoding: line.utf8.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }, as: UTF8.self)
            }
            output.appendString(line)
            output.appendCRLF()
        case .integer(let value):
            output.appendByte(UInt8(ascii: ":"))
            output.appendString(String(value))
            output.appendCRLF()
        case .bulk(let bytes):
            Self.header(UInt8(ascii: "$"), bytes.count, into: &output)
            bytes.withUnsafeBytes { output.appendBytes($0) }
            output.appendCRLF()
        case .value(let entry):
            Self.header(UInt8(ascii: "$"), entry.valueCount, into: &output)
            entry.withValueBytes { output.appendBytes($0) }
            output.appendCRLF()
        case .null:
            if version >= 3 {
                output.appendString("_\r\n")
            } else {
                output.appendString("$-1\r\n")
            }
        case .nullArray:
            if version >= 3 {
                output.appendString("_\r\n")
            } else {
                output.appendString("*-1\r\n")
            }
        case .array(let items):
            Self.header(UInt8(ascii: "*"), items.count, into: &output)
            for item in items { item.encode(version: version, into: &output) }
        case .map(let pairs):
            if version >= 3 {
                Self.header(UInt8(ascii: "%"), pairs.count, into: &output)
            } else {
                Self.header(UInt8(ascii: "*"), pairs.count * 2, into: &output)
            }
            for (key, value) in pairs {
                key.encode(version: version, into: &output)
                value.encode(version: version, into: &output)
            }
        case .boolean(let value):
            if version >= 3 {
                output.appendString(value ? "#t\r\n" : "#f\r\n")
            } else {
                output.appendString(value ? ":1\r\n" : ":0\r\n")
            }
        case .double(let value):
            let text = value.isFinite ? String(value) : value.isNaN ? "nan" : value > 0 ? "inf" : "-inf"
            if version >= 3 {
                output.appendByte(UInt8(ascii: ","))
                output.appendString(text)
                output.appendCRLF()
            } else {
                RESPReply.bulk(text).encode(version: version, into: &output)
            }
        case .verbatim(let text):
            if version >= 3 {
                Self.header(UInt8(ascii: "="), text.utf8.count + 4, into: &output)
                output.appendString("txt:")
                output.appendString(text)
                output.appendCRLF()
            } else {
                RESPReply.bulk(text).encode(version: version, into: &output)
            }
        }
    }

    private static func header<Output: RESPOutput>(_ marker: UInt8, _ count: Int, into output: inout Output) {
        output.appendByte(marker)
        output.appendString(String(count))
        output.appendCRLF()
    }

    /// The reply's bytes for protocol `version`.
    public func encoded(version: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        encode(version: version, into: &bytes)
        return bytes
    }
}

/// Where encoded replies go: a byte array here, a `ByteBuffer` in the server.
public protocol RESPOutput {
    mutating func appendByte(_ byte: UInt8)
    mutating func appendBytes(_ bytes: UnsafeRawBufferPointer)
    mutating func appendString(_ text: String)
}

extension RESPOutput {
    mutating func appendCRLF() {
        appendByte(0x0D)
        appendByte(0x0A)
    }
}

extension Array: RESPOutput where Element == UInt8 {
    public mutating func appendByte(_ byte: UInt8) { append(byte) }
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
    public mutating func appendString(_ text: String) { append(contentsOf: text.utf8) }
}
