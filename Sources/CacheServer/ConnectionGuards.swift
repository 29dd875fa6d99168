import NIOCore
import Synchronization

/// A bound on the open connections of one listening socket (`MAX_CONNECTIONS`): past it a new
/// connection is closed at once, before anything is read from it, and counted.
final class ConnectionLimiter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let refusedCount = Atomic<UInt64>(0)

    init(limit: Int) {
        precondition(limit > 0, "ConnectionLimiter: a limit of at least one connection")
        self.limit = limit
    }

    /// Connections open now.
    var openConnections: Int { open.load(ordering: .relaxed) }
    /// Connections closed because the limit was reached.
    var refused: UInt64 { refusedCount.load(ordering: .relaxed) }

    /// Takes `channel` in if there is room, and gives its place back when it closes.
    func admit(_ channel: any Channel) -> Bool {
        guard open.add(1, ordering: .relaxed).newValue <= limit else {
            open.subtract(1, ordering: .relaxed)
            refusedCount.add(1, ordering: .relaxed)
            return false
        }
        channel.closeFuture.whenComplete { [self] _ in open.subtract(1, ordering: .relaxed) }
        return true
    }

    /// Why the child channel initializer failed: NIO then closes the connection.
    struct Full: Error, CustomStringConvertible {
        var description: String { "connection limit reached" }
    }
}

/// Slow clients cannot hold a connection: a request must arrive whole (head and body) within
/// `readTimeout` of its first byte, or the node answers 408 and closes (a client sending a byte a
/// second, or a body sent too slowly, is cut off); a connection with no request for `idleTimeout`
/// is closed. Sits before the HTTP decoder, so it sees the bytes as they come; an answer written
/// ends the request it answered. The request path pays a clock reading per request, no timer: one
/// check runs a few times a second per connection.
final class HTTPReadDeadlineHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let readTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let onTimeout: @Sendable () -> Void
    /// Whether a request is being read, and since when (or since when the connection is idle).
    private var reading = false
    private var since = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(readTimeout: TimeAmount, idleTimeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void) {
        self.readTimeout = readTimeout
        self.idleTimeout = idleTimeout
        self.onTimeout = onTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        since = .now()
        scheduleCheck(context)
        context.fireChannelActive()
    }

    private func scheduleCheck(_ context: ChannelHandlerContext) {
        let interval = TimeAmount.nanoseconds(min(250_000_000, min(readTimeout, idleTimeout).nanoseconds / 4))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        check = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            let context = bound.value
            let limit = reading ? readTimeout : idleTimeout
            if NIODeadline.now() - since >= limit {
                check = nil
                expired(context)
            } else {
                scheduleCheck(context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A request begins: the clock of its read deadline starts with its first byte, not its last.
        if !reading {
            reading = true
            since = .now()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An answer (or `100 Continue`) went out: what was being read was read. A connection that
        // is written to is not idle either (an event stream's, which reads nothing).
        reading = false
        since = .now()
        context.write(data, promise: promise)
    }

    private func expired(_ context: ChannelHandlerContext) {
        onTimeout()
        guard reading else {
            context.close(promise: nil)
            return
        }
        let body = #"{"error":"request not received whole within the read timeout (REQUEST_READ_TIMEOUT_MS)"}"#
        var response = context.channel.allocator.buffer(capacity: 192)
        response.writeString(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)"
                + "\r\nconnection: close\r\n\r\n\(body)")
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// A peer connection that says nothing for `idleTimeout`, or (with authentication) has not sent a
/// whole handshake within `handshakeTimeout`, is closed: members talk every protocol period.
final class PeerIdleHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let idleTimeout: TimeAmount
    private let handshake: (bytes: Int, timeout: TimeAmount)?
    private var received = 0
    private var opened = NIODeadline.now()
    private var lastRead = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(idleTimeout: TimeAmount, handshake: (bytes: Int, timeout: TimeAmount)?) {
        self.idleTimeout = idleTimeout
        self.handshake = handshake
    }

    func channelActive(context: ChannelHandlerContext) {
        opened = .now()
        lastRead = opened
        scheduleCheck(context)
        context.fireChannelActive()
    }

    private func scheduleCheck(_ context: ChannelHandlerContext) {
        let shortest = min(idleTimeout, handshake?.timeout ?? idleTimeout)
        let interval = TimeAmount.nanoseconds(min(1_000_000_000, shortest.nanoseconds / 4))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        check = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            let now = NIODeadline.now()
            let silent = now - lastRead >= idleTimeout
            let unproven = handshake.map { received < $0.bytes && now - opened >= $0.timeout } ?? false
            if silent || unproven {
                check = nil
                bound.value.close(promise: nil)
            } else {
                scheduleCheck(bound.value)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received &+= unwrapInboundIn(data).readableBytes
        lastRead = .now()
        context.fireChannelRead(data)
    }
}
