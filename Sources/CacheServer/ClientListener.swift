import NIOCore
import NIOExtras
import NIOPosix

/// A client port's listening socket (HTTP's `PORT`, the Redis protocol's `RESP_PORT`): the socket
/// options both want, the node's connection limit, and a graceful shutdown that lets every open
/// connection finish what it is answering.
struct ClientListener: Sendable {
    /// The port actually bound (useful when port 0 was asked for).
    let port: Int
    private let channel: any Channel
    private let quiescing: ServerQuiescingHelper

    /// Binds `host:port` on `group`; each connection `limiter` admits gets its handlers from
    /// `initialize` (called on the connection's loop).
    static func bind(
        host: String, port: Int, group: any EventLoopGroup, limiter: ConnectionLimiter,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> ClientListener {
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
                guard limiter.admit(channel) else {
                    return channel.eventLoop.makeFailedFuture(ConnectionLimiter.Full())
                }
                return channel.eventLoop.makeCompletedFuture { try initialize(channel) }
            }
            .bind(host: host, port: port)
            .get()
        return ClientListener(port: channel.localAddress?.port ?? port, channel: channel, quiescing: quiescing)
    }

    /// Stops accepting connections, lets every connection finish the request it is serving, and
    /// returns once all are closed.
    func shutdown() async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: promise)
        try await promise.futureResult.get()
    }
}
