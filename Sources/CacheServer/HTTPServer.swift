import NIOCore
import NIOHTTP1
import NIOSSL

/// The listening socket and its connections, bound to one node.
public final class HTTPServer: Sendable {
    /// The port actually bound (useful when port 0 was asked for).
    public var port: Int { listener.port }
    private let listener: ClientListener

    private init(listener: ClientListener) {
        self.listener = listener
    }

    /// Binds `host:port` on `group` and starts serving `node`'s API.
    public static func start(
        node: CacheNode, host: String, port: Int, group: any EventLoopGroup
    ) async throws -> HTTPServer {
        let listener = try await ClientListener.bind(
            host: host, port: port, group: group, limiter: node.httpConnections
        ) { channel in
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
        node.didBind(port: listener.port)
        return HTTPServer(listener: listener)
    }

    /// Stops accepting connections, lets every connection finish the request it is serving, and
    /// returns once all are closed.
    public func shutdown() async throws {
        try await listener.shutdown()
    }
}
