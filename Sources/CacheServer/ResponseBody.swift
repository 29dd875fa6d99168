import CacheCore
import Foundation
import NIOCore
import NIOHTTP1

/// The JSON bodies the API answers with, written byte for byte into a buffer (no encoder: they are
/// few, small and fixed).
enum ResponseBody {
    /// `{"error": message}`.
    static func error(_ allocator: ByteBufferAllocator, _ message: String) -> ByteBuffer {
        var body = allocator.buffer(capacity: message.utf8.count + 16)
        body.writeStaticString(#"{"error":"#)
        body.writeJSONString(Array(message.utf8))
        body.writeStaticString("}")
        return body
    }

    static func fixed(_ allocator: ByteBufferAllocator, _ text: StaticString) -> ByteBuffer {
        var body = allocator.buffer(capacity: text.utf8CodeUnitCount)
        body.writeStaticString(text)
        return body
    }

    /// `/health`: `{"status", ["reason",] "node_id"}`.
    static func health(_ allocator: ByteBufferAllocator, status: String, reason: String?, nodeID: String) -> ByteBuffer
    {
        var body = allocator.buffer(capacity: 96)
        body.writeStaticString(#"{"status":"#)
        body.writeJSONString(Array(status.utf8))
        if let reason {
            body.writeStaticString(#","reason":"#)
            body.writeJSONString(Array(reason.utf8))
        }
        body.writeStaticString(#","node_id":"#)
        body.writeJSONString(Array(nodeID.utf8))
        body.writeStaticString("}")
        return body
    }

    /// The status and body of a data request's answer.
    static func outcome(
        _ outcome: ClusterNode.ClientOutcome, key: [UInt8], allocator: ByteBufferAllocator, now: Instant
    ) -> (HTTPResponseStatus, ByteBuffer) {
        switch outcome {
        case .found(let entry):
            var body = allocator.buffer(capacity: key.count + entry.valueCount + 48)
            body.writeStaticString(#"{"key":"#)
            body.writeJSONString(key)
            // A value written over the Redis protocol may be any bytes; JSON strings are text.
            let text = entry.withValueBytes { UTF8Validation.isValid($0) }
            if text {
                body.writeStaticString(#","value":"#)
                entry.withValueBytes { body.writeJSONString($0) }
            } else {
                body.writeStaticString(#","value":null,"value_base64":""#)
                body.writeString(entry.withValueBytes { Data($0) }.base64EncodedString())
                body.writeStaticString(#"""#)
            }
            body.writeStaticString(#","ttl_remaining":"#)
            if let expiresAt = entry.expiresAt {
                let nanoseconds = now.nanoseconds(to: expiresAt)
                body.writeDecimal(Int(max(1, (nanoseconds + 999_999_999) / 1_000_000_000)))
            } else {
                body.writeStaticString("null")
            }
            body.writeStaticString("}")
            return (.ok, body)
        case .notFound, .deleted(existed: false, _):
            return (.notFound, error(allocator, "not found"))
        case .stored:
            return (.ok, fixed(allocator, #"{"status":"ok"}"#))
        case .deleted(existed: true, _):
            return (.ok, fixed(allocator, #"{"status":"deleted"}"#))
        case .unavailable(let level, let answered, let required):
            var body = allocator.buffer(capacity: 160)
            body.writeStaticString(#"{"error":"#)
            let message = "consistency level \(level) not met: \(answered) of \(required) replicas answered"
            body.writeJSONString(Array(message.utf8))
            body.writeStaticString(#","consistency":"#)
            body.writeJSONString(Array(level.rawValue.utf8))
            body.writeStaticString(#","answered":"#)
            body.writeDecimal(answered)
            body.writeStaticString(#","required":"#)
            body.writeDecimal(required)
            body.writeStaticString("}")
            return (.serviceUnavailable, body)
        case .invalid(let requestError):
            return (requestError.kind.status, error(allocator, requestError.message))
        case .refused(let reason):
            return (.serviceUnavailable, error(allocator, "write not persisted; writes are refused: \(reason)"))
        case .overloaded(let reason):
            return (.serviceUnavailable, error(allocator, "overloaded: \(reason)"))
        case .notReady(let reason):
            return (.serviceUnavailable, error(allocator, "node not ready: \(reason)"))
        }
    }
}
