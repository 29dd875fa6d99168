import CacheCore
import NIOCore
import Synchronization

/// The Redis-protocol listener (`RESP_PORT`): redis-cli, redis-benchmark and Redis client libraries
/// talk to the node here. Any node serves any key, as over HTTP.
public final class RESPServer: Sendable {
    public var port: Int { listener.port }
    private let listener: ClientListener

    private init(listener: ClientListener) {
        self.listener = listener
    }

    /// Binds `host:port` on `group` and serves `node` over the Redis protocol. Its connections count
    /// towards the same `MAX_CONNECTIONS` as HTTP's.
    public static func start(
        node: CacheNode, host: String, port: Int, group: any EventLoopGroup
    ) async throws
        -> RESPServer
    {
        let connectionIDs = Atomic<Int64>(0)
        let listener = try await ClientListener.bind(
            host: host, port: port, group: group, limiter: node.httpConnections
        ) { channel in
            let id = connectionIDs.add(1, ordering: .relaxed).newValue
            // A connection that sends nothing for IDLE_TIMEOUT_MS is closed, as over HTTP.
            try channel.pipeline.syncOperations.addHandler(
                PeerIdleHandler(idleTimeout: .nanoseconds(node.configuration.idleTimeout.nanoseconds), handshake: nil))
            try channel.pipeline.syncOperations.addHandler(RESPConnectionHandler(node: node, id: id))
        }
        return RESPServer(listener: listener)
    }

    /// Stops accepting connections and closes the open ones once their answers are written.
    public func shutdown() async throws {
        try await listener.shutdown()
    }
}

/// One Redis-protocol connection: reads bytes into `RESPParser`, hands its commands to
/// `RESPConnection` and carries out what that decides (operations to the node, replies, close).
///
/// Back-pressure: when the connection's pipeline is full, or the socket stops taking writes, the
/// handler stops reading; what was read and not parsed yet (at most one read's bytes) waits.
final class RESPConnectionHandler: ChannelDuplexHandler, ClientReplyReceiver {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let node: CacheNode
    private var parser: RESPParser
    private var connection: RESPConnection
    private var actions: [RESPConnection.Action] = []
    /// Bytes read and not yet parsed (the pipeline was full).
    private var unparsed: ByteBuffer?
    /// The node's request numbers of operations waiting for an answer on the node's own loop.
    private var waiting: [UInt64: (command: UInt64, operation: Int)] = [:]
    private var context: ChannelHandlerContext?
    private var reading = false
    /// Replies encoded since the last flush: written and flushed together, once per read batch.
    private var outbound: ByteBuffer?
    /// A `read` asked for by the channel and held back (pipeline full, or writes not draining).
    private var readHeld = false
    private var closed = false
    private var performing = false
    /// The server is shutting down: close once every command read is answered.
    private var quiescing = false

    init(node: CacheNode, id: Int64) {
        self.node = node
        let configuration = node.configuration
        let limits = configuration.storeLimits
        parser = RESPParser(
            limits: RESPParser.Limits(
                maximumBulkBytes: max(limits.maximumValueBytes, limits.maximumKeyBytes),
                maximumCommandBytes: max(16 << 20, limits.maximumValueBytes)))
        connection = RESPConnection(
            configuration: RESPConnection.Configuration(
                id: id, requiresAuthentication: node.clientTokens != nil,
                settings: [
                    ("save", ""), ("appendonly", configuration.walDirectory == nil ? "no" : "yes"),
                    ("maxmemory", "\(configuration.maximumMemoryBytes ?? 0)"), ("databases", "1"),
                ]))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        node.metrics.respConnectionOpened()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed = true
        node.metrics.respConnectionClosed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        guard !quiescing else { return }
        let buffer = unwrapInboundIn(data)
        if unparsed == nil {
            unparsed = buffer
        } else {
            var more = buffer
            unparsed!.writeBuffer(&more)
        }
        parse()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if !quiescing, connection.acceptsCommands, unparsed == nil, context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        unparsed = nil
        closeIfQuiesced()
    }

    private func closeIfQuiesced() {
        guard quiescing, !closed, connection.queuedCommands == 0, let context else { return }
        closed = true
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(outbound.take() ?? ByteBuffer())).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Reading

    /// Feeds what was read to the parser while the pipeline has room.
    private func parse() {
        guard var buffer = unparsed else { return }
        unparsed = nil
        let now = node.clock.now()
        while buffer.readableBytes > 0, connection.acceptsCommands {
            let (consumed, event) = buffer.withUnsafeReadableBytes { self.parser.parse($0, from: 0) }
            buffer.moveReaderIndex(forwardBy: consumed)
            guard let event else { break }
            connection.received(event, now: now, into: &actions)
            perform()
        }
        if buffer.readableBytes > 0, !connection.isClosing { unparsed = buffer }
    }

    private func resumeReading() {
        guard !closed, let context else { return }
        if unparsed != nil { parse() }
        if readHeld, !quiescing, connection.acceptsCommands, unparsed == nil, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    // MARK: Carrying out

    private func perform() {
        // Answers given inline add actions while these run: one loop drains them all, in order.
        guard !performing else { return }
        performing = true
        defer { performing = false }
        var index = 0
        while index < actions.count {
            let action = actions[index]
            index += 1
            carryOut(action)
        }
        actions.removeAll(keepingCapacity: true)
        if !reading { flushIfNeeded() }
        closeIfQuiesced()
    }

    private func carryOut(_ action: RESPConnection.Action) {
        guard let context, !closed else { return }
        switch action {
        case .submit(let command, let operation, let clientOperation):
            submit(clientOperation, command: command, operation: operation, loop: context.eventLoop)
        case .authenticate(let command, let password):
            let role = node.clientTokens?.value.role(of: password)
            if role == nil { node.metrics.respAuthenticationFailed() }
            connection.authenticated(command: command, role, now: node.clock.now(), into: &actions)
        case .describe(let command, let description):
            let future: EventLoopFuture<RESPReply>
            switch description {
            case .keyCount:
                future = node.driver.inspect(from: context.eventLoop) { state in
                    .integer(Int64(state.node?.statistics.entries ?? 0))
                }
            case .info(let sections):
                future = node.respInfo(sections: sections, from: context.eventLoop)
            }
            future.assumeIsolated().whenComplete { [self] result in
                let reply: RESPReply
                switch result {
                case .success(let value): reply = value
                case .failure(let error): reply = .error("ERR \(error)")
                }
                connection.described(command: command, reply, now: node.clock.now(), into: &actions)
                perform()
                resumeReading()
            }
        case .reply(let reply, let version):
            if outbound == nil { outbound = context.channel.allocator.buffer(capacity: 1024) }
            reply.encode(version: version, into: &outbound!)
            node.metrics.respCommandAnswered(failed: reply.isError)
            // Large answers leave as they are made rather than piling up until the batch ends.
            if outbound!.readableBytes >= 1 << 20 { flushIfNeeded() }
        case .close:
            closed = true
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(outbound.take() ?? ByteBuffer())).whenComplete { _ in
                bound.value.close(promise: nil)
            }
        }
    }

    private func submit(
        _ operation: ClusterNode.ClientOperation, command: UInt64, operation index: Int, loop: any EventLoop
    ) {
        let driver = node.driver
        if loop === driver.loop {
            switch driver.submitOnLoop(operation) {
            case .answered(let reply):
                connection.completed(
                    command: command, operation: index, reply.outcome, now: node.clock.now(), into: &actions)
            case .pending(let number):
                waiting[number] = (command, index)
                driver.whenAnswered(number, self)
            }
            return
        }
        let completion = NIOLoopBound<(ClusterNode.ClientReply) -> Void>(
            { [self] reply in completedElsewhere(command: command, operation: index, reply.outcome) }, eventLoop: loop)
        driver.submit(operation, from: loop, completion: completion)
    }

    func received(_ reply: ClusterNode.ClientReply) {
        guard let (command, index) = waiting.removeValue(forKey: reply.request) else { return }
        completedElsewhere(command: command, operation: index, reply.outcome)
    }

    private func completedElsewhere(command: UInt64, operation: Int, _ outcome: ClusterNode.ClientOutcome) {
        guard !closed else { return }
        connection.completed(command: command, operation: operation, outcome, now: node.clock.now(), into: &actions)
        perform()
        resumeReading()
    }

    private func flushIfNeeded() {
        guard let buffer = outbound.take(), let context else { return }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}

extension ByteBuffer: RESPOutput {
    public mutating func appendByte(_ byte: UInt8) { writeInteger(byte) }
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
    public mutating func appendString(_ text: String) { writeString(text) }
}

extension Optional {
    /// The value, leaving `nil` behind.
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}

extension RESPReply {
    var isError: Bool {
        if case .error = self { return true }
        return false
    }
}
