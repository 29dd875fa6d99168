import CacheCore
import NIOCore
import NIOHTTP1

/// Serves the node's HTTP API on one connection, behind SwiftNIO's HTTP/1 request decoder.
///
/// The connection's life is `HTTPConnectionStateMachine`'s; routing is `APIRoute`'s; bodies are
/// written by `ResponseBody`. This handler carries out what they decide: it hands data requests to
/// the node's driver and writes each answer whole, in one buffer (see `docs/http-server.md` for why
/// NIO's response side is bypassed), flushing once per read batch.
final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler, ClientReplyReceiver {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let node: CacheNode
    private var machine = HTTPConnectionStateMachine()
    /// Request parts read while an answer is pending, handled once it is out.
    private var held = CircularBuffer<HTTPServerRequestPart>()
    /// Responses written since the last flush.
    private var needsFlush = false
    /// Between a `channelRead` and its `channelReadComplete`: answers made now are flushed together.
    private var reading = false
    private var context: ChannelHandlerContext?
    /// The data request whose answer the node will hand over (`received`).
    private var awaiting: HTTPConnectionStateMachine.Request?
    /// A read held back because the client does not read its answers (the socket stopped taking
    /// writes): passed on once it drains, so a pipelining client that never reads costs at most one
    /// read batch and the socket's buffers, never a growing pile of answers.
    private var readHeldForWrites = false

    init(node: CacheNode) {
        self.node = node
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        let part = unwrapInboundIn(data)
        // An event stream's connection carries no more requests: what its client sends is dropped.
        if machine.isStreaming { return }
        if machine.acceptsParts && held.isEmpty {
            handle(part, context: context)
        } else {
            held.append(part)
        }
    }

    func read(context: ChannelHandlerContext) {
        guard context.channel.isWritable else {
            readHeldForWrites = true
            return
        }
        if machine.readRequested(holding: !held.isEmpty) == .read { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readHeldForWrites {
            readHeldForWrites = false
            read(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if machine.quiesce() == .closeNow { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The request decoder gives up on bytes that are not HTTP/1: say so, then hang up.
        if error is HTTPParserError, machine.parseFailed() {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            write(
                context: context, head: head, route: .unknown, started: .now, status: .badRequest,
                body: ResponseBody.error(context.channel.allocator, "malformed HTTP request: \(error)"), close: true)
            return
        }
        context.close(promise: nil)
    }

    // MARK: Requests

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            let route = APIRoute.resolve(method: head.method, uri: head.uri)
            if let refusal = node.authorize(route, headers: head.headers), machine.refuseHead() {
                write(
                    context: context, head: head, route: route.name, started: .now, status: refusal.status,
                    body: ResponseBody.error(context.channel.allocator, refusal.message),
                    challenge: refusal.status == .unauthorized, close: true)
                return
            }
            switch machine.headReceived(head, route: route, now: .now) {
            case .receive(let sendContinue):
                if sendContinue {
                    context.write(
                        wrapOutboundOut(
                            context.channel.allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")),
                        promise: nil)
                    needsFlush = true
                }
            case .refuseBody:
                refuseBody(context: context, head: head, route: route.name)
            case .ignore:
                break
            }
        case .body(var chunk):
            if machine.bodyReceived(&chunk) == .refuseBody {
                refuseBody(
                    context: context, head: HTTPRequestHead(version: .http1_1, method: .PUT, uri: "/put"), route: .put)
            }
        case .end:
            if let request = machine.endReceived() { respond(to: request, context: context) }
        }
    }

    private func refuseBody(context: ChannelHandlerContext, head: HTTPRequestHead, route: RouteName) {
        let message = "request body exceeds \(HTTPConnectionStateMachine.maximumBodyBytes) bytes"
        write(
            context: context, head: head, route: route, started: .now, status: .payloadTooLarge,
            body: ResponseBody.error(context.channel.allocator, message), close: true)
    }

    private func respond(to request: HTTPConnectionStateMachine.Request, context: ChannelHandlerContext) {
        let allocator = context.channel.allocator
        if node.lifecycle == .starting, request.route.servesData {
            answer(request, status: .serviceUnavailable, body: ResponseBody.error(allocator, "node is starting"))
            return
        }
        let loop = context.eventLoop
        var deadline: Instant?
        if request.route.servesData, let header = request.head.headers.first(name: ClientDeadline.header) {
            switch ClientDeadline.parse(header) {
            case .success(let instant): deadline = instant
            case .failure(let error):
                answer(request, status: error.kind.status, body: ResponseBody.error(allocator, error.message))
                return
            }
        }
        switch request.route {
        case .get(let key, let consistency):
            submit(.get(key: key, consistency: consistency), deadline: deadline, for: request, loop: loop)
        case .put(let consistency):
            let body = request.body ?? ByteBuffer()
            switch PutRequest.decode(body.readableBytesView) {
            case .success(let put):
                submit(put.operation(consistency: consistency), deadline: deadline, for: request, loop: loop)
            case .failure(let error):
                answer(request, status: error.kind.status, body: ResponseBody.error(allocator, error.message))
            }
        case .delete(let key, let consistency):
            submit(.delete(key: key, consistency: consistency), deadline: deadline, for: request, loop: loop)
        case .health:
            let nodeID = node.nodeID
            let lifecycle = node.lifecycle
            answer(request, when: node.health(from: loop)) { health in
                let status: HTTPResponseStatus = lifecycle == .serving ? .ok : .serviceUnavailable
                return (
                    status, ResponseBody.health(allocator, status: health.status, reason: health.reason, nodeID: nodeID)
                )
            }
        case .stats:
            answer(request, when: node.statsDocument(from: loop)) { (.ok, allocator.buffer(bytes: $0)) }
        case .ready:
            let nodeID = node.nodeID
            answer(request, when: node.readiness(from: loop)) { readiness in
                (
                    readiness.ready ? .ok : .serviceUnavailable,
                    ResponseBody.health(allocator, status: readiness.status, reason: nil, nodeID: nodeID)
                )
            }
        case .cluster:
            answer(request, when: node.clusterDocument(from: loop)) { (.ok, allocator.buffer(bytes: $0)) }
        case .clusterStats:
            let promise = loop.makePromise(of: [UInt8].self)
            let node = self.node
            let authorization = request.head.headers.first(name: "authorization")
            promise.completeWithTask { await node.clusterStats(authorization: authorization) }
            answer(request, when: promise.futureResult) { (.ok, allocator.buffer(bytes: $0)) }
        case .leave:
            answer(request, when: node.leave(from: loop)) {
                (HTTPResponseStatus(statusCode: $0.status), allocator.buffer(bytes: $0.body))
            }
        case .forget(let member):
            answer(request, when: node.forget(member, from: loop)) {
                (HTTPResponseStatus(statusCode: $0.status), allocator.buffer(bytes: $0.body))
            }
        case .plan(let adding, let removing):
            answer(request, when: node.plan(adding: adding, removing: removing, from: loop)) {
                (HTTPResponseStatus(statusCode: $0.status), allocator.buffer(bytes: $0.body))
            }
        case .metrics:
            answer(
                request, when: node.metricsExposition(from: loop),
                contentType: "text/plain; version=0.0.4; charset=utf-8"
            ) {
                (.ok, allocator.buffer(bytes: $0))
            }
        case .page(let asset):
            var body = allocator.buffer(capacity: asset.bytes.count)
            body.writeBytes(asset.bytes)
            answer(
                request, status: .ok, body: body, contentType: asset.contentType, extraHeaders: ClusterPage.headers)
        case .pageEvents:
            startEventStream(request, context: context)
        case .refused(_, let status, let message, let allow):
            answer(request, status: status, body: ResponseBody.error(allocator, message), allow: allow)
        }
    }

    // MARK: The cluster page's event stream

    /// Answers `GET /ui/events` with an event stream that lasts as long as the connection: the head
    /// now, then what the node's feed sends. A page that stops reading is dropped once its socket
    /// has not taken writes for `ClusterFeed.maximumUnwritableTicks`; a token that stops admitting
    /// it ends its stream.
    private func startEventStream(_ request: HTTPConnectionStateMachine.Request, context: ChannelHandlerContext) {
        let node = self.node
        let headers = request.head.headers
        let loop = context.eventLoop
        let bound = NIOLoopBound(context, eventLoop: loop)
        let subscriber = ClusterFeed.Subscriber(
            send: { bytes in
                loop.execute {
                    let context = bound.value
                    guard context.channel.isActive, !bytes.isEmpty else { return }
                    guard context.channel.isWritable else {
                        // Behind by more than the socket holds: this page cannot follow.
                        context.close(promise: nil)
                        return
                    }
                    context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                }
            },
            authorization: headers.first(name: "authorization"),
            admitted: { node.authorize(.pageEvents, headers: headers) == nil },
            close: { loop.execute { bound.value.close(promise: nil) } })
        guard let id = node.feed.subscribe(subscriber, node: node) else {
            answer(
                request, status: .serviceUnavailable,
                body: ResponseBody.error(
                    context.channel.allocator,
                    "this node already feeds \(ClusterFeed.maximumSubscribers) pages: load the page from another member"
                ))
            return
        }
        machine.streamStarted()
        context.channel.closeFuture.whenComplete { _ in node.feed.unsubscribe(id) }
        var head = context.channel.allocator.buffer(capacity: 256)
        head.writeStaticString(
            """
            HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n\
            x-accel-buffering: no\r\nconnection: close\r\n\r\n
            """)
        // A comment line at once, so that the page knows the stream is open before the first tick.
        head.writeStaticString(": cluster feed\n\n")
        context.writeAndFlush(wrapOutboundOut(head), promise: nil)
        let elapsed = request.started.duration(to: .now)
        node.metrics.recordRequest(route: .uiEvents, status: 200, nanoseconds: elapsed.nanoseconds)
        node.requestLog.answered(request.head, route: .uiEvents, status: 200, nanoseconds: elapsed.nanoseconds)
    }

    /// Hands a data request to the node; the answer is written when it comes.
    private func submit(
        _ operation: ClusterNode.ClientOperation, deadline: Instant?, for request: HTTPConnectionStateMachine.Request,
        loop: any EventLoop
    ) {
        let driver = node.driver
        if loop === driver.loop {
            // The node lives on this connection's loop: no hop, and usually no wait.
            switch driver.submitOnLoop(operation, deadline: deadline) {
            case .answered(let reply):
                answer(request, reply)
            case .pending(let number):
                awaiting = request
                driver.whenAnswered(number, self)
            }
            return
        }
        let completion = NIOLoopBound<(ClusterNode.ClientReply) -> Void>(
            { [self] reply in answer(request, reply) }, eventLoop: loop)
        driver.submit(operation, deadline: deadline, from: loop, completion: completion)
    }

    func received(_ reply: ClusterNode.ClientReply) {
        guard let request = awaiting else { return }
        awaiting = nil
        answer(request, reply)
    }

    private func answer(_ request: HTTPConnectionStateMachine.Request, _ reply: ClusterNode.ClientReply) {
        guard let context else { return }
        let (status, body) = ResponseBody.outcome(
            reply.outcome, key: request.route.key, allocator: context.channel.allocator, now: node.clock.now())
        answer(request, status: status, body: body, ringVersion: node.driver.ring.version)
    }

    private func answer<T>(
        _ request: HTTPConnectionStateMachine.Request, when future: EventLoopFuture<T>,
        contentType: StaticString = "application/json", _ render: @escaping (T) -> (HTTPResponseStatus, ByteBuffer)
    ) {
        future.assumeIsolated().whenComplete { [self] result in
            guard let context else { return }
            switch result {
            case .success(let value):
                let (status, body) = render(value)
                answer(request, status: status, body: body, contentType: contentType)
            case .failure(let error):
                answer(
                    request, status: .internalServerError,
                    body: ResponseBody.error(context.channel.allocator, "internal error: \(error)"))
            }
        }
    }

    /// Writes the answer to the request being answered, then carries on with what was held.
    private func answer(
        _ request: HTTPConnectionStateMachine.Request, status: HTTPResponseStatus, body: ByteBuffer,
        contentType: StaticString = "application/json", allow: String? = nil, ringVersion: UInt64? = nil,
        extraHeaders: StaticString? = nil
    ) {
        guard let context else { return }
        let keepAlive = machine.keepsAlive(request.head)
        write(
            context: context, head: request.head, route: request.route.name, started: request.started, status: status,
            body: body, contentType: contentType, allow: allow, ringVersion: ringVersion, extraHeaders: extraHeaders,
            close: !keepAlive)
        switch machine.answerWritten(keptAlive: keepAlive) {
        case .close:
            break
        case .resume(let read):
            while machine.acceptsParts, let part = held.popFirst() {
                handle(part, context: context)
            }
            flushIfNeeded(context: context)
            if read, machine.acceptsParts { self.read(context: context) }
        }
    }

    private func write(
        context: ChannelHandlerContext, head: HTTPRequestHead, route: RouteName, started: ContinuousClock.Instant,
        status: HTTPResponseStatus, body: ByteBuffer, contentType: StaticString = "application/json",
        allow: String? = nil, ringVersion: UInt64? = nil, challenge: Bool = false, extraHeaders: StaticString? = nil,
        close: Bool
    ) {
        var body = body
        var response = context.channel.allocator.buffer(
            capacity: 128 + min(body.readableBytes, HTTPResponseEncoding.inlineBodyLimit))
        HTTPResponseEncoding.head(
            version: head.version, status: status, contentType: contentType, contentLength: body.readableBytes,
            keepAlive: !close, allow: allow, ringVersion: ringVersion, challenge: challenge, extraHeaders: extraHeaders,
            into: &response)
        if body.readableBytes <= HTTPResponseEncoding.inlineBodyLimit {
            response.writeBuffer(&body)
            context.write(wrapOutboundOut(response), promise: nil)
        } else {
            context.write(wrapOutboundOut(response), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
        }
        if close {
            needsFlush = false
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
                boundContext.value.close(promise: nil)
            }
        } else {
            needsFlush = true
            // An answer that came later than its read batch goes out now; one in the batch waits for
            // `channelReadComplete` and leaves with the others.
            if !reading { flushIfNeeded(context: context) }
        }
        let elapsed = started.duration(to: .now)
        node.metrics.recordRequest(route: route, status: Int(status.code), nanoseconds: elapsed.nanoseconds)
        node.requestLog.answered(head, route: route, status: Int(status.code), nanoseconds: elapsed.nanoseconds)
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        guard needsFlush else { return }
        needsFlush = false
        context.flush()
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

    /// The key of a keyed route.
    fileprivate var key: [UInt8] {
        switch self {
        case .get(let key, _), .delete(let key, _): key
        default: []
        }
    }
}

extension RequestError.Kind {
    var status: HTTPResponseStatus {
        switch self {
        case .badRequest: .badRequest
        case .payloadTooLarge: .payloadTooLarge
        case .deadlinePassed: .requestTimeout
        }
    }
}

extension APIRoute {
    /// The role a client's token needs for the route when tokens are on (`nil`: open to all, as
    /// the probes `/health` and `/ready` are, and `/metrics` unless `METRICS_REQUIRE_TOKEN`).
    func requiredRole(protectingMetrics: Bool) -> ClientRole? {
        switch self {
        // The page and its script hold no data: its feed asks for the token.
        case .health, .ready, .refused, .page: nil
        case .metrics: protectingMetrics ? .read : nil
        case .get, .stats, .cluster, .clusterStats, .pageEvents: .read
        case .put, .delete: .write
        case .leave, .forget, .plan: .admin
        }
    }
}
