import NIOCore
import NIOHTTP1

/// Writes whole HTTP/1.1 responses into a buffer: status line, the few headers the node sends,
/// and the body, ready for a single socket write.
///
/// The node's answers are always small, `Content-Length` framed and known in full before the first
/// byte goes out, so they skip NIO's response encoder and its per-part trip through the pipeline.
enum HTTPResponseEncoding {
    /// Bodies up to this size are copied behind the head so the response is one buffer; larger
    /// ones go out as a second buffer in the same flush.
    static let inlineBodyLimit = 16 * 1024

    /// The header data answers carry the node's ring version in (16 hexadecimal digits, as
    /// `/cluster`'s `ring_version`).
    static let ringVersionHeader: StaticString = "x-ring-version"

    /// The head of a response with `contentLength` body bytes.
    static func head(
        version: HTTPVersion,
        status: HTTPResponseStatus,
        contentType: StaticString,
        contentLength: Int,
        keepAlive: Bool,
        allow: String?,
        ringVersion: UInt64? = nil,
        challenge: Bool = false,
        extraHeaders: StaticString? = nil,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writeStatusLine(status, into: &buffer)
        buffer.writeStaticString("\r\ncontent-type: ")
        buffer.writeStaticString(contentType)
        buffer.writeStaticString("\r\ncontent-length: ")
        buffer.writeDecimal(contentLength)
        if let allow {
            buffer.writeStaticString("\r\nallow: ")
            buffer.writeString(allow)
        }
        if challenge {
            // A 401 says how to authenticate (RFC 9110 §11.6.1).
            buffer.writeStaticString("\r\nwww-authenticate: Bearer realm=\"swift-cache\"")
        }
        if let ringVersion {
            // Clients compare it with the ring they route by and refresh theirs when it differs.
            buffer.writeStaticString("\r\n")
            buffer.writeStaticString(ringVersionHeader)
            buffer.writeStaticString(": ")
            buffer.writeHexadecimal(ringVersion)
        }
        if let extraHeaders {
            // Whole header lines, each after its own CRLF.
            buffer.writeStaticString(extraHeaders)
        }
        if !keepAlive {
            buffer.writeStaticString("\r\nconnection: close")
        } else if version.minor == 0 {
            buffer.writeStaticString("\r\nconnection: keep-alive")
        }
        buffer.writeStaticString("\r\n\r\n")
    }

    private static func writeStatusLine(_ status: HTTPResponseStatus, into buffer: inout ByteBuffer) {
        switch status {
        case .ok: buffer.writeStaticString("200 OK")
        case .badRequest: buffer.writeStaticString("400 Bad Request")
        case .notFound: buffer.writeStaticString("404 Not Found")
        case .methodNotAllowed: buffer.writeStaticString("405 Method Not Allowed")
        case .payloadTooLarge: buffer.writeStaticString("413 Payload Too Large")
        case .internalServerError: buffer.writeStaticString("500 Internal Server Error")
        case .serviceUnavailable: buffer.writeStaticString("503 Service Unavailable")
        default:
            buffer.writeDecimal(Int(status.code))
            buffer.writeString(" " + status.reasonPhrase)
        }
    }
}

extension ByteBuffer {
    /// Writes `value` as 16 lowercase hexadecimal digits.
    mutating func writeHexadecimal(_ value: UInt64) {
        let digits: StaticString = "0123456789abcdef"
        var shift = 60
        while shift >= 0 {
            writeInteger(digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }

    /// Writes a non-negative integer in decimal without going through `String`.
    @inlinable
    mutating func writeDecimal(_ value: Int) {
        precondition(value >= 0, "writeDecimal takes non-negative values")
        if value < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for Int.max
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { scratch in
            while remaining > 0 {
                scratch[23 - count] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
                count += 1
            }
            writeBytes(UnsafeRawBufferPointer(rebasing: scratch[(24 - count)...]))
        }
    }

    /// Writes `bytes`, which must be valid UTF-8, as a JSON string literal: quotes, backslashes and
    /// control characters escaped, runs of other bytes copied as they are.
    @inlinable
    mutating func writeJSONString(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeJSONString($0) }
    }

    /// Writes `bytes`, which must be valid UTF-8, as a JSON string literal.
    @inlinable
    mutating func writeJSONString(_ bytes: UnsafeRawBufferPointer) {
        writeInteger(UInt8(ascii: "\""))
        do {
            let buffer = bytes.assumingMemoryBound(to: UInt8.self)
            var runStart = 0
            for index in 0..<buffer.count {
                let byte = buffer[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buffer[runStart..<index])))
                switch byte {
                case UInt8(ascii: "\""): writeStaticString(#"\""#)
                case UInt8(ascii: "\\"): writeStaticString(#"\\"#)
                case 0x0A: writeStaticString(#"\n"#)
                case 0x0D: writeStaticString(#"\r"#)
                case 0x09: writeStaticString(#"\t"#)
                default:
                    let hex: StaticString = "0123456789abcdef"
                    writeStaticString(#"\u00"#)
                    writeInteger(hex.utf8Start[Int(byte >> 4)])
                    writeInteger(hex.utf8Start[Int(byte & 0x0F)])
                }
                runStart = index + 1
            }
            writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: buffer[runStart..<buffer.count])))
        }
        writeInteger(UInt8(ascii: "\""))
    }
}
