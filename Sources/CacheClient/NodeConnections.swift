import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Keep-alive HTTP/1.1 connections to one node, and one request at a time on each: a call takes an
/// idle connection (or opens one), writes its request, reads the answer, and gives the connection
/// back. The node's `ConnectionPermits` bound the calls in flight, so they bound the connections.
///
/// A lean transport made for this client's calls (small requests, answers of at most a few MiB,
/// one node per pool): no redirects, no decompression, no tracing, a deadline per call, and
/// cancellation that closes the connection. Its per-call cost is what lets a load tool built on the
/// client keep pace with wrk (docs/benchmarks.md).
final class NodeConnections: Sendable {
    /// One answer, whole.
    struct Response: Sendable {
        var status: Int
        var body: [UInt8]
        var ringVersion: String?
    }

    /// Why a call got no answer.
    enum Failure: Error, Equatable {
        /// No connection, or it closed or failed before the answer was whole.
        case unreachable(String)
        /// The deadline passed.
        case timedOut
        /// The answer's body was longer than the limit.
        case tooLarge(Int)
        /// The pool was closed.
        case closed
    }

    private struct State {
        var idle: [any Channel] = []
        var closed = false
    }

    let host: String
    let port: Int
    private let tls: NIOSSLContext?
    private let connectTimeout: TimeAmount
    private let maximumResponseBytes: Int
    private let group: any EventLoopGroup
    private let state = Mutex(State())

    init(
        host: String, port: Int, tls: NIOSSLContext?, connectTimeout: TimeAmount, maximumResponseBytes: Int,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.maximumResponseBytes = maximumResponseBytes
        self.group = group
    }

    /// Sends `head` (and `body`) and returns the answer, by `deadline`. A connection taken from the
    /// idle list that turns out closed before any answer came is replaced by a fresh one once: the
    /// node closed it while it was idle, which says nothing about the node.
    func execute(_ head: HTTPRequestHead, body: ByteBuffer?, deadline: NIODeadline) async throws -> Response {
        var reused = takeIdle()
        while true {
            let channel: any Channel
            if let idle = reused {
                channel = idle
            } else {
                channel = try await connect(deadline: deadline)
            }
            do {
                let response = try await send(head, body: body, on: channel, deadline: deadline)
                return response
            } catch Failure.unreachable(let reason) where reused != nil && reason == CallHandler.closedBeforeAnswer {
                reused = takeIdle()
                continue
            }
        }
    }

    /// Closes every idle connection; later calls fail with `closed`. Connections in use close when
    /// their call ends.
    func close() {
        let idle = state.withLock { state in
            state.closed = true
            defer { state.idle = [] }
            return state.idle
        }
        for channel in idle { channel.close(promise: nil) }
    }

    /// Idle connections (tests).
    var idleCount: Int { state.withLock { $0.idle.count } }

    private func takeIdle() -> (any Channel)? {
        state.withLock { state in
            while let channel = state.idle.popLast() {
                if channel.isActive { return channel }
            }
            return nil
        }
    }

    private func giveBack(_ channel: any Channel) {
        let keep = state.withLock { state in
            guard !state.closed, channel.isActive else { return false }
            state.idle.append(channel)
            return true
        }
        if !keep { channel.close(promise: nil) }
    }

    private func connect(deadline: NIODeadline) async throws -> any Channel {
        if state.withLock({ $0.closed }) { throw Failure.closed }
        let remaining = deadline - .now()
        guard remaining > .zero else { throw Failure.timedOut }
        let tls = self.tls
        let host = self.host
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(min(connectTimeout, remaining))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // A name is checked against the certificate and sent as SNI; an address is not a name.
                        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                        let serverName = isAddress ? nil : host
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    // The client writes its own heads (names and values it made), so they need no checking.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(CallHandler())
                }
            }
        do {
            return try await bootstrap.connect(host: host, port: port).get()
        } catch ChannelError.connectTimeout {
            throw Failure.unreachable("connect timed out")
        } catch {
            throw Failure.unreachable(Self.describe(error))
        }
    }

    private func send(
        _ head: HTTPRequestHead, body: ByteBuffer?, on channel: any Channel, deadline: NIODeadline
    ) async throws -> Response {
        let promise = channel.eventLoop.makePromise(of: CallHandler.Answer.self)
        let call = CallHandler.Call(
            head: head, body: body, deadline: deadline, maximumResponseBytes: maximumResponseBytes, promise: promise)
        // A connection that closed after it was taken never reaches the handler: its write fails,
        // and so does the call (a second failure, from the handler, is ignored).
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in
            promise.fail(Failure.unreachable(CallHandler.closedBeforeAnswer))
        }
        channel.writeAndFlush(call, promise: written)
        let answer: CallHandler.Answer
        do {
            answer = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch {
            channel.close(promise: nil)
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
        if answer.keepAlive { giveBack(channel) } else { channel.close(promise: nil) }
        return answer.response
    }

    /// A connection error in one short phrase ("connection refused", not a structure dump).
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return describe(first.error) }
            return "could not connect"
        }
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode)).lowercased()
        }
        return "\(error)"
    }
}

/// Carries one call at a time over its connection: writes the request, gathers the answer, and
/// completes the call's promise; a deadline that passes, a close or an error fails it. Confined to
/// the connection's event loop.
private final class CallHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Call
    typealias OutboundOut = HTTPClientRequestPart

    static let closedBeforeAnswer = "the connection closed before the answer"

    struct Call {
        var head: HTTPRequestHead
        var body: ByteBuffer?
        var deadline: NIODeadline
        var maximumResponseBytes: Int
        var promise: EventLoopPromise<Answer>
    }

    struct Answer: Sendable {
        var response: NodeConnections.Response
        /// Whether the connection may carry another call.
        var keepAlive: Bool
    }

    private struct InFlight {
        var promise: EventLoopPromise<Answer>
        var maximumResponseBytes: Int
        var timer: Scheduled<Void>?
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        /// Whether any byte of the answer came (a reused connection that closed before is retried).
        var answered = false
    }

    private var inFlight: InFlight?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        guard inFlight == nil else {
            let failure = NodeConnections.Failure.unreachable("a call is already in flight on this connection")
            call.promise.fail(failure)
            promise?.fail(failure)
            return
        }
        guard context.channel.isActive else {
            call.promise.fail(NodeConnections.Failure.unreachable(Self.closedBeforeAnswer))
            promise?.fail(NodeConnections.Failure.unreachable(Self.closedBeforeAnswer))
            return
        }
        var flight = InFlight(promise: call.promise, maximumResponseBytes: call.maximumResponseBytes)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        flight.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: call.deadline) { [self] in
            fail(NodeConnections.Failure.timedOut)
            bound.value.close(promise: nil)
        }
        inFlight = flight
        context.write(wrapOutboundOut(.head(call.head)), promise: nil)
        if let body = call.body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard var flight = inFlight else {
            // Bytes nobody asked for: the connection is out of step; drop it.
            context.close(promise: nil)
            return
        }
        flight.answered = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            flight.head = head
            inFlight = flight
        case .body(var buffer):
            guard flight.body.count + buffer.readableBytes <= flight.maximumResponseBytes else {
                fail(NodeConnections.Failure.tooLarge(flight.maximumResponseBytes))
                context.close(promise: nil)
                return
            }
            flight.body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            inFlight = flight
        case .end:
            inFlight = nil
            flight.timer?.cancel()
            guard let head = flight.head else {
                flight.promise.fail(NodeConnections.Failure.unreachable("an answer without a status line"))
                context.close(promise: nil)
                return
            }
            flight.promise.succeed(
                Answer(
                    response: NodeConnections.Response(
                        status: Int(head.status.code), body: flight.body,
                        ringVersion: head.headers.first(name: "x-ring-version")),
                    keepAlive: head.isKeepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let answered = inFlight?.answered ?? false
        let reason = answered ? "the connection closed mid-answer" : Self.closedBeforeAnswer
        fail(NodeConnections.Failure.unreachable(reason))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(NodeConnections.Failure.unreachable(NodeConnections.describe(error)))
        context.close(promise: nil)
    }

    private func fail(_ failure: NodeConnections.Failure) {
        guard let flight = inFlight else { return }
        inFlight = nil
        flight.timer?.cancel()
        flight.promise.fail(failure)
    }
}
