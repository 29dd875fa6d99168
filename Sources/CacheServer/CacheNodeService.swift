import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

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
        // Trapped first: a SIGHUP that comes while the node starts must not end the process (its
        // default action), and is handled once the node serves.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let configuration = node.configuration
        let server: HTTPServer
        do {
            server = try await HTTPServer.start(
                node: node, host: configuration.host, port: configuration.port, group: group)
        } catch {
            throw listenFailed(host: configuration.host, port: configuration.port, setting: "PORT", error)
        }
        let peers: PeerServer
        do {
            peers = try await PeerServer.start(
                host: configuration.host, port: configuration.peerPort, group: group,
                keyring: node.driver.peerKeyring, limiter: node.peerConnections, driver: node.driver,
                metrics: node.metrics, logger: node.logger, refusals: node.driver.peerRefusals)
        } catch {
            try? await server.shutdown()
            throw listenFailed(host: configuration.host, port: configuration.peerPort, setting: "PEER_PORT", error)
        }
        var resp: RESPServer?
        if let respPort = configuration.respPort {
            do {
                resp = try await RESPServer.start(node: node, host: configuration.host, port: respPort, group: group)
            } catch {
                try? await server.shutdown()
                await peers.close()
                throw listenFailed(host: configuration.host, port: respPort, setting: "RESP_PORT", error)
            }
        }
        node.logger.info(
            "listening",
            metadata: [
                "host": "\(configuration.host)", "port": .number(server.port), "peer_port": .number(peers.port),
                "resp_port": resp.map { .number($0.port) } ?? "off", "event_loops": .number(configuration.eventLoops),
            ])
        onListening(server.port)
        do {
            // Health answers 503 "starting" until the log directory is recovered.
            try await node.start(httpPort: server.port, peerPort: peers.port)
        } catch {
            node.logger.critical("cannot recover the write-ahead log", metadata: ["error": "\(error)"])
            try? await server.shutdown()
            try? await resp?.shutdown()
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
        let node = self.node
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            // SIGHUP rereads the secrets, tokens and certificate files: rotation without a restart.
            group.addTask {
                for await _ in hangups { node.reloadSecrets() }
            }
            group.addTask {
                for await _ in leaves { return }
            }
            await group.next()
            group.cancelAll()
        }

        node.transition(to: .draining)
        do {
            try await server.shutdown()
            try await resp?.shutdown()
        } catch {
            node.logger.warning("error while closing connections", metadata: ["error": "\(error)"])
        }
        await node.stop()
        await peers.close()
    }
}

extension CacheNodeService {
    /// Says which address and setting could not be bound, in the log, and returns the error to throw.
    private func listenFailed(host: String, port: Int, setting: String, _ error: any Error) -> ListenError {
        let failure = ListenError(host: host, port: port, setting: setting, reason: ListenError.reason(error))
        node.logger.critical(
            "cannot listen",
            metadata: [
                "address": "\(failure.address)", "setting": "\(setting)", "reason": "\(failure.reason)",
            ])
        return failure
    }
}

/// A port the node could not listen on: which address, which setting chose it, and why.
public struct ListenError: Error, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `PORT`, `PEER_PORT` or `RESP_PORT`.
    public var setting: String
    /// The system's reason, e.g. "address already in use".
    public var reason: String

    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var description: String {
        "cannot listen on \(address) (\(setting)): \(reason)"
            + (reason.contains("in use") ? "; another process has it: stop that one, or choose another \(setting)" : "")
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        return "\(error)"
    }
}
