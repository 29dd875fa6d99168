import CacheCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Why a peer connection was closed: its bytes were not peer frames.
struct PeerFrameError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "invalid peer frame: \(reason)" }
}

/// Decodes a stream of peer frames (`PeerProtocol`). A frame whose declared length is out of range is
/// refused before a byte of it is buffered; one that does not decode closes the connection.
struct PeerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = PeerMessage
    let metrics: NodeMetrics

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        guard length >= 2, Int(length) <= PeerProtocol.maximumFrameLength else {
            throw PeerFrameError(reason: "frame length \(length) out of range")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        let step = buffer.withUnsafeReadableBytes { PeerProtocol.decode($0, at: 0) }
        switch step {
        case .frame(let message, let next):
            buffer.moveReaderIndex(forwardBy: next)
            metrics.peerFrameReceived(bytes: next)
            context.fireChannelRead(wrapInboundOut(message))
            return .continue
        case .needMoreBytes:
            return .needMoreData
        case .invalid(let reason):
            throw PeerFrameError(reason: reason)
        }
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws
        -> DecodingState
    {
        .needMoreData
    }
}

/// Hands decoded peer messages to the node; closes a connection whose bytes are not frames or that
/// failed authentication, counts it, and logs it once per remote address.
final class PeerInboundHandler: ChannelInboundHandler {
    typealias InboundIn = PeerMessage

    private let driver: NodeDriver
    private let metrics: NodeMetrics
    private let logger: Logger
    private let refusals: PeerRefusalLog

    init(driver: NodeDriver, metrics: NodeMetrics, logger: Logger, refusals: PeerRefusalLog) {
        self.driver = driver
        self.metrics = metrics
        self.logger = logger
        self.refusals = refusals
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.deliver(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let authentication = error is PeerAuthenticationError
        if authentication { metrics.peerAuthenticationFailed() } else { metrics.peerConnectionRefused() }
        let remote = context.remoteAddress?.ipAddress ?? "unknown"
        if refusals.firstTime(remote) {
            logger.warning(
                authentication ? "refused a peer connection" : "closing a peer connection",
                metadata: [
                    "remote": "\(context.remoteAddress?.description ?? "unknown")", "error": "\(error)",
                    "note": "logged once per address; cache_peer_* metrics count every one",
                ])
        }
        context.close(promise: nil)
    }
}

/// Remote addresses whose refused connections were logged: each once, so that a flood of bad
/// connections writes a few lines, not one per connection. Bounded: past the bound nothing more is
/// logged (the metrics still count).
final class PeerRefusalLog: Sendable {
    static let maximumAddresses = 1024
    private let logged = Mutex<Set<String>>([])

    /// Whether `address` is seen for the first time (and may be logged).
    func firstTime(_ address: String) -> Bool {
        logged.withLock { logged in
            guard logged.count < Self.maximumAddresses else { return false }
            return logged.insert(address).inserted
        }
    }
}

/// Whether a peer connection is one this node made or one it accepted.
enum PeerConnectionRole {
    case connecting, accepted
}

/// The one place where a peer connection's pipeline is made, for both directions: with a cluster
/// secret, the handshake and the sealing or opening of every record come first, so that nothing a
/// connection sends reaches the frame decoder before it proved it holds the secret.
enum PeerChannel {
    static func configure(
        _ channel: any Channel, role: PeerConnectionRole, keyring: PeerKeyringBox?, driver: NodeDriver,
        metrics: NodeMetrics, logger: Logger, refusals: PeerRefusalLog
    ) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if let keyring {
                switch role {
                case .connecting: try pipeline.addHandler(PeerSealingHandler(key: keyring.value.sealing))
                case .accepted: try pipeline.addHandler(ByteToMessageHandler(PeerOpeningDecoder(keyring: keyring)))
                }
            }
            try pipeline.addHandler(ByteToMessageHandler(PeerFrameDecoder(metrics: metrics)))
            try pipeline.addHandler(
                PeerInboundHandler(driver: driver, metrics: metrics, logger: logger, refusals: refusals))
        }
    }
}

/// The listening socket peers connect to.
final class PeerServer: Sendable {
    /// An accepted peer connection silent this long is closed (the peer reconnects when it has
    /// something to say).
    static let idleTimeout = TimeAmount.minutes(5)
    /// With authentication, the handshake must arrive within this long of the connection.
    static let handshakeTimeout = TimeAmount.seconds(10)

    /// The port actually bound.
    let port: Int
    private let channel: any Channel

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start(
        host: String, port: Int, group: any EventLoopGroup, keyring: PeerKeyringBox?, limiter: ConnectionLimiter,
        driver: NodeDriver, metrics: NodeMetrics, logger: Logger, refusals: PeerRefusalLog
    ) async throws -> PeerServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                guard limiter.admit(channel) else {
                    return channel.eventLoop.makeFailedFuture(ConnectionLimiter.Full())
                }
                do {
                    // Members talk every protocol period; a connection silent for minutes (or one that
                    // does not finish its handshake in seconds) holds a place for nothing.
                    try channel.pipeline.syncOperations.addHandler(
                        PeerIdleHandler(
                            idleTimeout: PeerServer.idleTimeout,
                            handshake: keyring == nil ? nil : (PeerHandshake.helloBytes, PeerServer.handshakeTimeout)))
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return PeerChannel.configure(
                    channel, role: .accepted, keyring: keyring, driver: driver, metrics: metrics, logger: logger,
                    refusals: refusals)
            }
            .bind(host: host, port: port)
            .get()
        return PeerServer(port: channel.localAddress?.port ?? port, channel: channel)
    }

    func close() async {
        try? await channel.close()
    }
}

/// Carries the node's messages to its peers over TCP: one outbound connection per peer address,
/// made on demand, with a bounded queue and backoff (`PeerLinkStateMachine`). Messages it cannot
/// hand over are reported to the node (`.undeliverable`). Confined to the node's loop.
///
/// Each node talks to a peer over its own outbound connection, and hears from it over the peer's;
/// answers go to the address a message names as its sender's, never back up the socket it came on.
final class TCPPeerTransport: PeerLinks {
    private struct Link {
        var machine = PeerLinkStateMachine()
        var channel: (any Channel)?
        var queue = CircularBuffer<(frame: ByteBuffer, message: PeerMessage)>()
        /// Failures logged since the link last worked (logging is rate-limited per link).
        var failuresLogged = 0
    }

    /// How long a connection attempt may take.
    static let connectTimeout = TimeAmount.seconds(1)
    /// Most peer links held: every member the membership may know, and room for seeds.
    static let maximumLinks = Membership.maximumMembers + 256

    private let loop: any EventLoop
    private let driver: NodeDriver
    private let metrics: NodeMetrics
    private let logger: Logger
    private let keyring: PeerKeyringBox?
    private let refusals: PeerRefusalLog
    private let report: (ClusterNode.Input) -> Void
    /// One link per peer address: members, seeds and the senders answered, at most `maximumLinks`.
    private var links = BoundedTable<String, Link>(capacity: TCPPeerTransport.maximumLinks)
    private var random = SystemRandomNumberGenerator()
    private var closed = false
    /// Peers with frames written and not yet flushed.
    private var unflushed: Set<String> = []

    init(
        loop: any EventLoop, driver: NodeDriver, metrics: NodeMetrics, logger: Logger, keyring: PeerKeyringBox?,
        refusals: PeerRefusalLog, report: @escaping (ClusterNode.Input) -> Void
    ) {
        self.loop = loop
        self.driver = driver
        self.metrics = metrics
        self.logger = logger
        self.keyring = keyring
        self.refusals = refusals
        self.report = report
    }

    func send(_ message: PeerMessage, to address: String) {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        let bytes = PeerProtocol.encode(message)
        var frame = ByteBufferAllocator().buffer(capacity: bytes.count)
        frame.writeBytes(bytes)
        if links[address] == nil, links.isFull, !dropIdleLink() {
            metrics.peerMessageRefused()
            report(.undeliverable(to: address, message))
            return
        }
        var link = links[address] ?? Link()
        let writable = link.channel?.isWritable ?? false
        switch link.machine.send(bytes: bytes.count, writable: writable, now: Self.now()) {
        case .write:
            link.channel!.write(frame, promise: nil)
            metrics.peerFrameSent(bytes: bytes.count)
            links[address] = link
            flushSoon(address)
        case .queue:
            link.queue.append((frame, message))
            links[address] = link
        case .queueAndConnect:
            link.queue.append((frame, message))
            links[address] = link
            connect(to: address)
        case .refuse(let reason):
            links[address] = link
            metrics.peerMessageRefused()
            if case .replication = message {
                logger.debug("peer message refused", metadata: ["peer": "\(address)", "reason": "\(reason)"])
            }
            report(.undeliverable(to: address, message))
        }
    }

    /// With the table full, a link with no connection and nothing waiting is dropped for a new one.
    private func dropIdleLink() -> Bool {
        guard let idle = links.keys.first(where: { links[$0]?.machine.state == .idle }) else { return false }
        links.removeValue(forKey: idle)
        return true
    }

    /// A message came from the peer at `address` (over its own connection): a link waiting to try
    /// it again tries at the next message instead.
    func heardFrom(_ address: String) {
        loop.preconditionInEventLoop()
        links[address]?.machine.heardFrom(now: Self.now())
    }

    /// Flushes written frames once the loop has run what it has in hand: all the messages one turn
    /// produces for a peer leave in one write, not one system call each.
    private func flushSoon(_ address: String) {
        guard unflushed.insert(address).inserted, unflushed.count == 1 else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            let transport = bound.value
            for address in transport.unflushed {
                guard let channel = transport.links[address]?.channel else { continue }
                channel.flush()
                transport.metrics.peerFlushed()
            }
            transport.unflushed.removeAll(keepingCapacity: true)
        }
    }

    /// Closes every connection; later sends are dropped.
    func close() {
        loop.preconditionInEventLoop()
        closed = true
        for link in links.values { link.channel?.close(promise: nil) }
        links.removeAll()
    }

    // MARK: Connections

    private func connect(to address: String) {
        guard let (host, port) = Self.split(address) else {
            failed(address, error: PeerFrameError(reason: "'\(address)' is not host:port"))
            return
        }
        let driver = self.driver
        let metrics = self.metrics
        let logger = self.logger
        let keyring = self.keyring
        let refusals = self.refusals
        let bound = NIOLoopBound(self, eventLoop: loop)
        // A new resolution at every attempt: a peer named by DNS (a compose service) may move.
        ClientBootstrap(group: loop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                PeerChannel.configure(
                    channel, role: .connecting, keyring: keyring, driver: driver, metrics: metrics, logger: logger,
                    refusals: refusals
                ).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(
                        PeerLinkWatcher(address: address, transport: bound))
                }
            }
            .connect(host: host, port: port)
            .assumeIsolated()
            .whenComplete { result in
                let transport = bound.value
                switch result {
                case .success(let channel): transport.connected(address, channel: channel)
                case .failure(let error): transport.failed(address, error: error)
                }
            }
    }

    private func connected(_ address: String, channel: any Channel) {
        guard !closed, var link = links[address] else {
            channel.close(promise: nil)
            return
        }
        if link.failuresLogged > 0 {
            logger.log(
                level: link.failuresLogged >= 3 ? .notice : .info, "peer reachable again",
                metadata: ["peer": "\(address)", "failed_attempts": .number(link.failuresLogged)])
        } else {
            logger.debug(
                "peer connected",
                metadata: ["peer": "\(address)", "queued_messages": .number(link.queue.count)])
        }
        link.failuresLogged = 0
        link.channel = channel
        link.machine.connected()
        links[address] = link
        drain(address)
    }

    fileprivate func drain(_ address: String) {
        guard var link = links[address], let channel = link.channel else { return }
        var wrote = false
        while channel.isWritable, let (frame, _) = link.queue.popFirst() {
            channel.write(frame, promise: nil)
            link.machine.dequeued(bytes: frame.readableBytes)
            metrics.peerFrameSent(bytes: frame.readableBytes)
            wrote = true
        }
        if wrote {
            channel.flush()
            metrics.peerFlushed()
        }
        links[address] = link
    }

    fileprivate func failed(_ address: String, error: any Error) {
        guard !closed, var link = links[address] else { return }
        let wait = link.machine.failed(now: Self.now(), jitter: Double.random(in: 0...1, using: &random))
        let refused = link.queue
        link.queue.removeAll()
        link.channel = nil
        // A peer that is not up yet is normal while a cluster starts: the first failure is `info`; the
        // third in a row is a `warning`, and so is every 20th after it.
        let failures = link.failuresLogged + 1
        if failures == 1 || failures == 3 || failures % 20 == 0 {
            logger.log(
                level: failures == 1 ? .info : .warning,
                failures == 1
                    ? "peer not reachable yet; retrying with backoff" : "cannot reach peer; retrying with backoff",
                metadata: [
                    "peer": "\(address)", "error": "\(Self.describe(error))", "failures": .number(failures),
                    "next_attempt_ms": .number(Int(wait.nanoseconds / 1_000_000)),
                ])
        }
        link.failuresLogged += 1
        links[address] = link
        metrics.peerConnectionFailed()
        for (_, message) in refused { report(.undeliverable(to: address, message)) }
    }

    fileprivate func inactive(_ address: String, channel: any Channel) {
        guard var link = links[address], link.channel === channel else { return }
        logger.debug(
            "peer connection closed", metadata: ["peer": "\(address)", "queued_messages": .number(link.queue.count)])
        link.channel = nil
        if link.queue.isEmpty {
            // Nothing was waiting: connect again when there is something to send.
            link.machine.closed()
            links[address] = link
        } else {
            links[address] = link
            failed(address, error: PeerFrameError(reason: "connection closed with messages queued"))
        }
    }

    /// The links' time: the monotonic clock (backoff waits must not jump with the wall clock).
    private static func now() -> Instant {
        Instant(nanosecondsSinceEpoch: Int64(NIODeadline.now().uptimeNanoseconds))
    }

    /// A connection error in a short phrase ("connection refused"), not NIO's structure dump.
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return describe(first.error) }
            if let dns = error.dnsAAAAError ?? error.dnsAError { return "cannot resolve: \(dns)" }
            return "could not connect"
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        return "\(error)"
    }

    /// `host:port`, `[v6]:port`.
    static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port), colon != address.startIndex
        else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

/// Tells the transport when an outbound connection drains or goes.
private final class PeerLinkWatcher: ChannelInboundHandler {
    typealias InboundIn = PeerMessage
    let address: String
    let transport: NIOLoopBound<TCPPeerTransport>

    init(address: String, transport: NIOLoopBound<TCPPeerTransport>) {
        self.address = address
        self.transport = transport
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { transport.value.drain(address) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.value.inactive(address, channel: context.channel)
        context.fireChannelInactive()
    }
}
