import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Runs one node under swift-service-lifecycle: binds, serves, runs upkeep on a timer, and on
/// graceful shutdown (SIGTERM or SIGINT) reports draining, stops accepting, finishes in-flight
/// requests and closes.
public struct CacheNodeService: Service {
    /// How often expired entries are swept and the allocator's figure is handed to the store
    /// (Redis's active expiry runs ten times a second too).
    public static let maintenanceInterval = TimeAmount.milliseconds(100)

    public let node: CacheNode
    private let onListening: @Sendable (Int) -> Void

    /// A service for `node`; `onListening` is told the bound port once the node serves.
    public init(node: CacheNode, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.node = node
        self.onListening = onListening
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: node.configuration.eventLoops)
        do {
            try await serve(on: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        // The server (and its quiescing helper, which touches the group when it goes) is released
        // by now, so the group can go.
        try await group.shutdownGracefully()
        node.logger.info("stopped")
    }

    private func serve(on group: MultiThreadedEventLoopGroup) async throws {
        let configuration = node.configuration
        let server = try await HTTPServer.start(
            node: node, host: configuration.host, port: configuration.port, group: group)
        let maintenance = group.next().scheduleRepeatedTask(
            initialDelay: Self.maintenanceInterval, delay: Self.maintenanceInterval
        ) { [node] _ in
            node.runMaintenance()
        }
        node.logger.info(
            "listening",
            metadata: [
                "host": "\(configuration.host)", "port": "\(server.port)", "node_id": "\(configuration.nodeID)",
                "event_loops": "\(configuration.eventLoops)",
            ])
        onListening(server.port)
        do {
            // Health answers 503 "starting" until the log directory is recovered.
            try await node.restore()
        } catch {
            node.logger.critical("cannot recover the write-ahead log", metadata: ["error": "\(error)"])
            maintenance.cancel()
            try? await server.shutdown()
            throw error
        }
        node.transition(to: .serving)

        // Returns on SIGTERM/SIGINT (graceful shutdown) or when the service group is cancelled.
        try? await gracefulShutdown()

        node.transition(to: .draining)
        maintenance.cancel()
        do {
            try await server.shutdown()
        } catch {
            node.logger.warning("error while closing connections", metadata: ["error": "\(error)"])
        }
        await node.closePersistence()
    }
}
