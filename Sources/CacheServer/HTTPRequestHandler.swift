import CacheCore
import NIOCore
import NIOHTTP1

/// Serves the node's HTTP API on one connection, behind SwiftNIO's HTTP/1 request decoder.
///
/// Reads and writes complete on the event loop without a task hop or a JSON encoder: the store is
/// consulted under its lock and the whole response is written byte for byte into one buffer
/// (see `docs/http-server.md` for why NIO's response side is bypassed). Responses are flushed once
/// per read batch. A write whose answer waits for the log (`WAL_SYNC=always`, say) holds back the
/// requests behind it on the connection, and reading from it, until the answer is out, so answers
/// always leave in request order. Bodies are only accepted for `PUT /put`, and a body over the
/// limit is refused from its `Content-Length` (or as soon as the chunks pass it) before it is
/// buffered whole.
final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

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
    /// Responses written since the last flush.
    private var needsFlush = false
    /// The server is shutting down: close once the request in progress is answered.
    private var quiescing = false
    /// A write's answer is waiting for the log; later requests wait behind it.
    private var awaitingLog = false
    /// Request parts read while `awaitingLog`, handled once the answer is out.
    private var held = CircularBuffer<HTTPServerRequestPart>()
    /// A read was asked for while `awaitingLog`; it is passed on afterwards.
    private var readPending = false

    init(node: CacheNode) {
        self.node = node
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if awaitingLog {
            held.append(part)
        } else {
            handle(part, context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if awaitingLog {
            readPending = true
        } else {
            context.read()
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
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
            if case .put = request.route, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.write(
                    wrapOutboundOut(context.channel.allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")),
                    promise: nil)
                needsFlush = true
            }
            state = .receiving(request)
        case .body(var chunk):
            guard case .receiving(var request) = state, case .put = request.route else { return }
            state = .idle  // drop the state's reference to the body, so appending does not copy it
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

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if case .idle = state, !awaitingLog {
            context.close(promise: nil)
        } else {
            quiescing = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The request decoder gives up on bytes that are not HTTP/1: say so, then hang up.
        if error is HTTPParserError, case .idle = state {
            let request = PendingRequest(
                head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"),
                route: .refused(route: .unknown, status: .badRequest, message: "", allow: nil), body: nil,
                started: .now)
            state = .refusedBody
            write(
                context: context, request: request, status: .badRequest,
                body: errorBody(context, "malformed HTTP request: \(error)"), close: true)
            return
        }
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
            switch PutRequest.decode(body.readableBytesView) {
            case .success(let put):
                finish(node.put(put, on: context.eventLoop), request: request, context: context)
            case .failure(let error):
                answer(.failure(.invalid(error)), request: request, context: context)
            }
        case .delete(let key):
            finish(node.delete(key, on: context.eventLoop), request: request, context: context)
        case .health:
            let lifecycle = node.lifecycle
            let failure = node.diskFailure
            var body = context.channel.allocator.buffer(capacity: 96)
            body.writeStaticString(#"{"status":"#)
            let status = lifecycle != .serving ? "\(lifecycle)" : failure == nil ? "ok" : "degraded"
            body.writeJSONString(Array(status.utf8))
            if let failure {
                body.writeStaticString(#","reason":"#)
                body.writeJSONString(Array("writes refused: \(failure)".utf8))
            }
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

    /// Answers a write now, or once the log says it may be acknowledged.
    private func finish(_ answer: CacheNode.WriteAnswer, request: PendingRequest, context: ChannelHandlerContext) {
        switch answer {
        case .now(let result):
            self.answer(result, request: request, context: context)
        case .afterLogging(let durable, let outcome):
            awaitingLog = true
            durable.assumeIsolated().whenComplete { result in
                self.awaitingLog = false
                switch result {
                case .success: self.answer(.success(outcome), request: request, context: context)
                case .failure(let error):
                    self.answer(.failure(.unavailable("\(error)")), request: request, context: context)
                }
                self.resume(context: context)
            }
        }
    }

    /// After an answer that waited: send it, then handle what was held back, then read again.
    private func resume(context: ChannelHandlerContext) {
        while !awaitingLog, let part = held.popFirst() {
            handle(part, context: context)
        }
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        if !awaitingLog, readPending {
            readPending = false
            context.read()
        }
        if quiescing, !awaitingLog, case .idle = state { context.close(promise: nil) }
    }

    private func answer(
        _ result: Result<CacheNode.WriteOutcome, CacheNode.WriteRefusal>, request: PendingRequest,
        context: ChannelHandlerContext
    ) {
        switch result {
        case .success(.stored):
            write(context: context, request: request, status: .ok, body: staticBody(context, #"{"status":"ok"}"#))
        case .success(.deleted):
            write(context: context, request: request, status: .ok, body: staticBody(context, #"{"status":"deleted"}"#))
        case .success(.notFound):
            write(context: context, request: request, status: .notFound, body: errorBody(context, "not found"))
        case .failure(.invalid(let error)):
            let status: HTTPResponseStatus = error.kind == .payloadTooLarge ? .payloadTooLarge : .badRequest
            write(context: context, request: request, status: status, body: errorBody(context, error.message))
        case .failure(.unavailable(let reason)):
            write(
                context: context, request: request, status: .serviceUnavailable,
                body: errorBody(context, "write not persisted; writes are refused: \(reason)"))
        }
    }

    private func write(
        context: ChannelHandlerContext,
        request: PendingRequest,
        status: HTTPResponseStatus,
        body: ByteBuffer,
        contentType: StaticString = "application/json",
        allow: String? = nil,
        close: Bool = false
    ) {
        let keepAlive = request.head.isKeepAlive && !close && !quiescing
        var body = body
        var response = context.channel.allocator.buffer(
            capacity: 128 + min(body.readableBytes, HTTPResponseEncoding.inlineBodyLimit))
        HTTPResponseEncoding.head(
            version: request.head.version, status: status, contentType: contentType,
            contentLength: body.readableBytes, keepAlive: keepAlive, allow: allow, into: &response)
        if body.readableBytes <= HTTPResponseEncoding.inlineBodyLimit {
            response.writeBuffer(&body)
            context.write(wrapOutboundOut(response), promise: nil)
        } else {
            context.write(wrapOutboundOut(response), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
        }
        if keepAlive {
            needsFlush = true
        } else {
            needsFlush = false
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                boundContext.value.close(promise: nil)
            }
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
