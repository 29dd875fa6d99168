import ArgumentParser
import CacheServer
import Foundation
import Logging
import ServiceLifecycle

/// `cache-node`: runs one node of the cache.
@main
struct CacheNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-node",
        abstract: "Runs one node of the distributed in-memory cache.",
        discussion: """
            Every setting can come from a flag, a config file of KEY=value lines (--config), or an \
            environment variable of the same KEY. Flags win over the file, the file over the environment.
            """
    )

    @Option(name: .long, help: "A file of KEY=value lines (# starts a comment).")
    var config: String?

    @Option(name: .customLong("node-id"), help: "NODE_ID") var nodeID: String?
    @Option(name: .customLong("host"), help: "HOST") var host: String?
    @Option(name: .customLong("port"), help: "PORT") var port: String?
    @Option(name: .customLong("wal-dir"), help: "WAL_DIR") var walDir: String?
    @Option(name: .customLong("max-memory-mb"), help: "MAX_MEMORY_MB") var maxMemoryMB: String?
    @Option(name: .customLong("max-size"), help: "MAX_SIZE") var maxSize: String?
    @Option(name: .customLong("replication-factor"), help: "REPLICATION_FACTOR") var replicationFactor: String?
    @Option(name: .customLong("ttl-default"), help: "TTL_DEFAULT") var ttlDefault: String?
    @Option(name: .customLong("gossip-interval"), help: "GOSSIP_INTERVAL") var gossipInterval: String?
    @Option(name: .customLong("heartbeat-interval"), help: "HEARTBEAT_INTERVAL") var heartbeatInterval: String?
    @Option(name: .customLong("failure-timeout"), help: "FAILURE_TIMEOUT") var failureTimeout: String?
    @Option(name: .customLong("seeds"), help: "SEEDS") var seeds: String?
    @Option(name: .customLong("peer-port"), help: "PEER_PORT") var peerPort: String?
    @Option(name: .customLong("advertise-host"), help: "ADVERTISE_HOST") var advertiseHost: String?
    @Option(name: .customLong("consistency"), help: "CONSISTENCY") var consistency: String?
    @Option(name: .customLong("log-level"), help: "LOG_LEVEL") var logLevel: String?
    @Option(name: .customLong("log-file"), help: "LOG_FILE") var logFile: String?
    @Option(name: .customLong("log-format"), help: "LOG_FORMAT") var logFormat: String?
    @Option(name: .customLong("log-file-max-mb"), help: "LOG_FILE_MAX_MB") var logFileMaxMB: String?
    @Option(name: .customLong("event-loops"), help: "EVENT_LOOPS") var eventLoops: String?

    /// The flags that were given, by configuration key name.
    private var flags: [String: String] {
        let given: [(String, String?)] = [
            ("NODE_ID", nodeID), ("HOST", host), ("PORT", port), ("WAL_DIR", walDir), ("MAX_MEMORY_MB", maxMemoryMB),
            ("MAX_SIZE", maxSize), ("REPLICATION_FACTOR", replicationFactor), ("TTL_DEFAULT", ttlDefault),
            ("GOSSIP_INTERVAL", gossipInterval), ("HEARTBEAT_INTERVAL", heartbeatInterval),
            ("FAILURE_TIMEOUT", failureTimeout), ("SEEDS", seeds), ("LOG_LEVEL", logLevel), ("LOG_FILE", logFile),
            ("LOG_FILE_MAX_MB", logFileMaxMB), ("EVENT_LOOPS", eventLoops), ("PEER_PORT", peerPort),
            ("ADVERTISE_HOST", advertiseHost), ("CONSISTENCY", consistency), ("LOG_FORMAT", logFormat),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { name, value in value.map { (name, $0) } })
    }

    func run() async throws {
        let configuration: NodeConfiguration
        let sink: LogSink
        do {
            configuration = try await NodeConfiguration.load(
                flags: flags, configFile: config, environment: ProcessInfo.processInfo.environment)
            sink = try LogSink(filePath: configuration.logFile, maxBytes: configuration.logFileMaxBytes)
        } catch {
            FileHandle.standardError.write(Data("cache-node: \(error)\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            JSONLogHandler(label: label, sink: sink, level: configuration.logLevel, format: configuration.logFormat)
        }
        let logger = Logger(label: "cache-node")
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: CacheNodeService(configuration: configuration, logger: logger),
                        // The node returns on its own after leaving the cluster: then the process ends, cleanly.
                        successTerminationBehavior: .gracefullyShutdownGroup)
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
