import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Runs one node under swift-service-lifecycle: binds, recovers and starts the node, serves, and on
/// graceful shutdown (SIGTERM or SIGINT) reports draining, stops accepting, finishes in-flight
/// requests, and syncs and closes the log.
public struct CacheNodeService: Service {
    public let node: CacheNode
    private let group: MultiThreadedEventLoopGroup
    private let onListening: @Sendable (Int) -> Void

    /// A service for a node configured by `configuration`; `onListening` is told the bound port once
    /// the node listens.
    public init(
        configuration: NodeConfiguration, logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoops)
        // The node lives on the first loop; connections are spread over all of them.
        node = CacheNode(configuration: configuration, logger: logger, loop: group.next())
        self.onListening = onListening
    }

    public func run() async throws {
        do {
            try await serve()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        // The server (and its quiescing helper, which touches the group when it goes) is released
        // by now, so the group can go.
        try await group.shutdownGracefully()
        node.logger.info("stopped")
    }

    private func serve() async throws {
        let configuration = node.configuration
        let server = try await HTTPServer.start(
            node: node, host: configuration.host, port: configuration.port, group: group)
        let peers: PeerServer
        do {
            peers = try await PeerServer.start(
                host: configuration.host, port: configuration.peerPort, group: group, driver: node.driver,
                metrics: node.metrics, logger: node.logger)
        } catch {
            try? await server.shutdown()
            throw error
        }
        node.logger.info(
            "listening",
            metadata: [
                "host": "\(configuration.host)", "port": "\(server.port)", "peer_port": "\(peers.port)",
                "event_loops": "\(configuration.eventLoops)",
            ])
        onListening(server.port)
        do {
            // Health answers 503 "starting" until the log directory is recovered.
            try await node.start(httpPort: server.port, peerPort: peers.port)
        } catch {
            node.logger.critical("cannot recover the write-ahead log", metadata: ["error": "\(error)"])
            try? await server.shutdown()
            await peers.close()
            await node.stop()
            throw error
        }
        node.logger.info(
            "started", metadata: ["node_id": "\(node.nodeID)", "seeds": "\(configuration.seeds.map(\.description))"])
        node.transition(to: .serving)

        // Returns on SIGTERM/SIGINT (graceful shutdown), when the service group is cancelled, or when
        // the node asked to leave has handed everything off.
        let leaves = node.leaveCompleted
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            group.addTask {
                for await _ in leaves { return }
            }
            await group.next()
            group.cancelAll()
        }

        node.transition(to: .draining)
        do {
            try await server.shutdown()
        } catch {
            node.logger.warning("error while closing connections", metadata: ["error": "\(error)"])
        }
        await node.stop()
        await peers.close()
    }
}
