import CacheCore
import NIOCore
import NIOHTTP1

/// Serves the node's HTTP API on one connection, directly on SwiftNIO's HTTP/1 pipeline.
///
/// Reads and writes complete on the event loop without a task hop or a JSON encoder: the store is
/// consulted under its lock and the answer is written byte for byte into a buffer. Bodies are
/// only accepted for `PUT /put`, and a body over the limit is refused from its `Content-Length`
/// (or as soon as the chunks pass it) before it is buffered whole.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest `PUT` body accepted: a maximal value whose every byte is a six-byte `\u00XX`
    /// escape, plus a maximal key escaped the same way and room for the rest of the object.
    static let maxBodyBytes = 6 * (StoreLimits.defaultMaxValueBytes + StoreLimits.defaultMaxKeyBytes) + 4096

    private struct PendingRequest {
        var head: HTTPRequestHead
        var route: APIRoute
        var body: ByteBuffer?
        var started: ContinuousClock.Instant
    }

    private enum State {
        case idle
        case receiving(PendingRequest)
        /// An answer went out before the body was read; the connection closes once it is written.
        case refusedBody
    }

    private let node: CacheNode
    private var state = State.idle

    init(node: CacheNode) {
        self.node = node
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let request = PendingRequest(
                head: head, route: APIRoute.resolve(method: head.method, uri: head.uri), body: nil, started: .now)
            if case .put = request.route,
                let length = head.headers.first(name: "content-length").flatMap(Int.init),
                length > Self.maxBodyBytes
            {
                refuseBody(context: context, request: request)
                return
            }
            state = .receiving(request)
        case .body(var chunk):
            guard case .receiving(var request) = state, case .put = request.route else { return }
            let received = (request.body?.readableBytes ?? 0) + chunk.readableBytes
            if received > Self.maxBodyBytes {
                refuseBody(context: context, request: request)
                return
            }
            if request.body == nil {
                request.body = chunk
            } else {
                request.body!.writeBuffer(&chunk)
            }
            state = .receiving(request)
        case .end:
            guard case .receiving(let request) = state else { return }
            state = .idle
            respond(context: context, to: request)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func refuseBody(context: ChannelHandlerContext, request: PendingRequest) {
        state = .refusedBody
        let message = "request body exceeds \(Self.maxBodyBytes) bytes"
        write(
            context: context, request: request, status: .payloadTooLarge, body: errorBody(context, message), close: true
        )
    }

    private func respond(context: ChannelHandlerContext, to request: PendingRequest) {
        if node.lifecycle == .starting, request.route.servesData {
            write(
                context: context, request: request, status: .serviceUnavailable,
                body: errorBody(context, "node is starting"))
            return
        }
        switch request.route {
        case .get(let key):
            switch node.get(key) {
            case .hit(let value, let expiresAt):
                var body = context.channel.allocator.buffer(capacity: key.count + value.count + 48)
                body.writeStaticString(#"{"key":"#)
                body.writeJSONString(key)
                body.writeStaticString(#","value":"#)
                body.writeJSONString(value)
                body.writeStaticString(#","ttl_remaining":"#)
                if let expiresAt {
                    let nanoseconds = node.clock.now().nanoseconds(to: expiresAt)
                    body.writeString(String(max(1, (nanoseconds + 999_999_999) / 1_000_000_000)))
                } else {
                    body.writeStaticString("null")
                }
                body.writeStaticString("}")
                write(context: context, request: request, status: .ok, body: body)
            case .miss:
                write(context: context, request: request, status: .notFound, body: errorBody(context, "not found"))
            }
        case .put:
            let body = request.body ?? ByteBuffer()
            let outcome = PutRequest.decode(body.readableBytesView).flatMap { node.put($0) }
            switch outcome {
            case .success:
                write(context: context, request: request, status: .ok, body: staticBody(context, #"{"status":"ok"}"#))
            case .failure(let error):
                let status: HTTPResponseStatus = error.kind == .payloadTooLarge ? .payloadTooLarge : .badRequest
                write(context: context, request: request, status: status, body: errorBody(context, error.message))
            }
        case .delete(let key):
            switch node.delete(key) {
            case .deleted:
                write(
                    context: context, request: request, status: .ok, body: staticBody(context, #"{"status":"deleted"}"#)
                )
            case .notFound:
                write(context: context, request: request, status: .notFound, body: errorBody(context, "not found"))
            }
        case .health:
            let lifecycle = node.lifecycle
            var body = context.channel.allocator.buffer(capacity: 96)
            body.writeStaticString(#"{"status":"#)
            body.writeJSONString(Array((lifecycle == .serving ? "ok" : "\(lifecycle)").utf8))
            body.writeStaticString(#","node_id":"#)
            body.writeJSONString(Array(node.configuration.nodeID.utf8))
            body.writeStaticString("}")
            write(
                context: context, request: request, status: lifecycle == .serving ? .ok : .serviceUnavailable,
                body: body)
        case .stats:
            write(context: context, request: request, status: .ok, body: bytesBody(context, node.statsDocument()))
        case .cluster:
            write(context: context, request: request, status: .ok, body: bytesBody(context, node.clusterDocument()))
        case .metrics:
            write(
                context: context, request: request, status: .ok, body: bytesBody(context, node.metricsExposition()),
                contentType: "text/plain; version=0.0.4; charset=utf-8")
        case .refused(_, let status, let message, let allow):
            write(context: context, request: request, status: status, body: errorBody(context, message), allow: allow)
        }
    }

    private func write(
        context: ChannelHandlerContext,
        request: PendingRequest,
        status: HTTPResponseStatus,
        body: ByteBuffer,
        contentType: String = "application/json",
        allow: String? = nil,
        close: Bool = false
    ) {
        let keepAlive = request.head.isKeepAlive && !close
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let allow { headers.add(name: "allow", value: allow) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: status, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in boundContext.value.close(promise: nil) }
        }
        let elapsed = request.started.duration(to: .now).components
        node.metrics.recordRequest(
            route: request.route.name, status: Int(status.code),
            nanoseconds: elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    }

    private func errorBody(_ context: ChannelHandlerContext, _ message: String) -> ByteBuffer {
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 16)
        body.writeStaticString(#"{"error":"#)
        body.writeJSONString(Array(message.utf8))
        body.writeStaticString("}")
        return body
    }

    private func staticBody(_ context: ChannelHandlerContext, _ text: StaticString) -> ByteBuffer {
        var body = context.channel.allocator.buffer(capacity: text.utf8CodeUnitCount)
        body.writeStaticString(text)
        return body
    }

    private func bytesBody(_ context: ChannelHandlerContext, _ bytes: [UInt8]) -> ByteBuffer {
        context.channel.allocator.buffer(bytes: bytes)
    }
}

extension APIRoute {
    /// Whether the route reads or writes entries (refused while the node is starting).
    fileprivate var servesData: Bool {
        switch self {
        case .get, .put, .delete: true
        default: false
        }
    }
}

extension ByteBuffer {
    /// Writes `bytes`, which must be valid UTF-8, as a JSON string literal: quotes, backslashes and
    /// control characters escaped, runs of other bytes copied as they are.
    @inlinable
    mutating func writeJSONString(_ bytes: [UInt8]) {
        writeInteger(UInt8(ascii: "\""))
        bytes.withUnsafeBufferPointer { buffer in
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
