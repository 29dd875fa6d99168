import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The listening socket and its connections, bound to one node.
public final class HTTPServer: Sendable {
    /// The port actually bound (useful when port 0 was asked for).
    public let port: Int
    private let channel: any Channel
    private let quiescing: ServerQuiescingHelper

    private init(port: Int, channel: any Channel, quiescing: ServerQuiescingHelper) {
        self.port = port
        self.channel = channel
        self.quiescing = quiescing
    }

    /// Binds `host:port` on `group` and starts serving `node`'s API.
    public static func start(
        node: CacheNode, host: String, port: Int, group: any EventLoopGroup
    ) async throws -> HTTPServer {
        let quiescing = ServerQuiescingHelper(group: group)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            // TCP_NODELAY is a TCP-level option: Nagle's algorithm must not hold small answers back.
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard node.httpConnections.admit(channel) else {
                    return channel.eventLoop.makeFailedFuture(ConnectionLimiter.Full())
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls = node.configuration.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context.value))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPReadDeadlineHandler(
                            readTimeout: .nanoseconds(node.configuration.requestReadTimeout.nanoseconds),
                            idleTimeout: .nanoseconds(node.configuration.idleTimeout.nanoseconds),
                            onTimeout: { node.metrics.httpConnectionTimedOut() }))
                    // Only NIO's request decoder: the handler writes whole responses itself.
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(node: node))
                }
            }
            .bind(host: host, port: port)
            .get()
        let boundPort = channel.localAddress?.port ?? port
        node.didBind(port: boundPort)
        return HTTPServer(port: boundPort, channel: channel, quiescing: quiescing)
    }

    /// Stops accepting connections, lets every connection finish the request it is serving, and
    /// returns once all are closed.
    public func shutdown() async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: promise)
        try await promise.futureResult.get()
    }
}
