import ArgumentParser
import CacheServer
import Foundation
import Logging
import ServiceLifecycle

/// `cache-node`: runs one node of the cache.
///
/// Exit status: 0 after a clean stop (SIGTERM, SIGINT, or a completed leave); 1 when the node cannot
/// run (a port in use, a data directory it cannot recover); 2 for an invalid configuration or
/// command line, whichever way the mistake was made.
@main
struct CacheNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-node",
        abstract: "Runs one node of the distributed in-memory cache.",
        discussion: """
            Every setting can come from a flag, a config file of KEY=value lines (--config), or an \
            environment variable of the same KEY (shown in capitals below). Flags win over the file, the \
            file over the environment. The node logs each setting's value and source at start.

            Exit status: 0 after a clean stop, 1 when the node cannot run (a port in use, a data \
            directory it cannot recover), 2 for an invalid configuration.
            """,
        version: "cache-node \(CacheNode.version)"
    )

    @Option(name: .long, parsing: .unconditional, help: "A file of KEY=value lines (# starts a comment).")
    var config: String?

    @OptionGroup(title: "Network") var network: NetworkOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Storage and limits") var storage: StorageOptions
    @OptionGroup(title: "Cluster") var cluster: ClusterOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions
    #if INJECTED_BUGS
        @OptionGroup(title: "Testing", visibility: .hidden) var testing: TestingOptions
    #endif

    /// Usage mistakes exit 2 like every other configuration error (argument-parser's own is 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data("cache-node: \(message(for: error))\n".utf8))
                FileHandle.standardError.write(Data("(cache-node --help lists every setting)\n".utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        #if INJECTED_BUGS
            let testingFlags = testing.given
        #else
            let testingFlags: [String: String] = [:]
        #endif
        let flags = [network.given, security.given, storage.given, cluster.given, logging.given, testingFlags].reduce(
            into: [String: String]()
        ) { $0.merge($1) { first, _ in first } }
        let configuration: NodeConfiguration
        let sink: LogSink
        do {
            configuration = try await NodeConfiguration.load(
                flags: flags, configFile: config, environment: ProcessInfo.processInfo.environment)
            sink = try LogSink(filePath: configuration.logFile, maximumBytes: configuration.logFileMaxBytes)
        } catch {
            FileHandle.standardError.write(Data("cache-node: \(error)\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            JSONLogHandler(label: label, sink: sink, level: configuration.logLevel, format: configuration.logFormat)
        }
        let logger = Logger(label: "cache-node")
        if configuration.logFormat == .text {
            // For people: the settings that were set, on one short line; the rest are defaults.
            let set = configuration.settings.filter { $0.source != .default }
            logger.info(
                "configuration",
                metadata: [
                    "version": "\(CacheNode.version)",
                    "set": "\(set.map { "\($0.key)=\($0.value) (\($0.source.rawValue))" }.joined(separator: ", "))",
                    "defaults": .number(configuration.settings.count - set.count),
                ])
        } else {
            logger.info(
                "configuration",
                metadata: [
                    "version": "\(CacheNode.version)",
                    "settings": .dictionary(
                        Dictionary(
                            uniqueKeysWithValues: configuration.settings.map {
                                ($0.key, .dictionary(["value": "\($0.value)", "source": "\($0.source.rawValue)"]))
                            })),
                ])
        }
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
        do {
            try await group.run()
        } catch let error as ListenError {
            // Logged by the service; said once more on stderr for whoever started the process.
            FileHandle.standardError.write(Data("cache-node: \(error)\n".utf8))
            throw ExitCode(1)
        } catch {
            FileHandle.standardError.write(Data("cache-node: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `--help`'s line for a key: what it means, its default, its environment name.
private func setting(_ name: String) -> ArgumentHelp {
    guard let key = NodeConfiguration.keys.first(where: { $0.name == name }) else {
        preconditionFailure("\(name) is not a configuration key")
    }
    return ArgumentHelp("\(key.help) Default: \(key.defaultValue). Env: \(key.name).", valueName: "value")
}

/// Network settings.
struct NetworkOptions: ParsableArguments {
    @Option(name: .customLong("host"), parsing: .unconditional, help: setting("HOST"))
    var host: String?
    @Option(name: .customLong("port"), parsing: .unconditional, help: setting("PORT"))
    var port: String?
    @Option(name: .customLong("peer-port"), parsing: .unconditional, help: setting("PEER_PORT"))
    var peerPort: String?
    @Option(name: .customLong("resp-port"), parsing: .unconditional, help: setting("RESP_PORT"))
    var respPort: String?
    @Option(name: .customLong("advertise-host"), parsing: .unconditional, help: setting("ADVERTISE_HOST"))
    var advertiseHost: String?
    @Option(name: .customLong("event-loops"), parsing: .unconditional, help: setting("EVENT_LOOPS"))
    var eventLoops: String?
    @Option(name: .customLong("max-connections"), parsing: .unconditional, help: setting("MAX_CONNECTIONS"))
    var maximumConnections: String?
    @Option(
        name: .customLong("request-read-timeout-ms"), parsing: .unconditional, help: setting("REQUEST_READ_TIMEOUT_MS"))
    var requestReadTimeoutMs: String?
    @Option(name: .customLong("idle-timeout-ms"), parsing: .unconditional, help: setting("IDLE_TIMEOUT_MS"))
    var idleTimeoutMs: String?

    /// The flags given, by key name.
    var given: [String: String] {
        let all: [(String, String?)] = [
            ("HOST", host), ("PORT", port), ("PEER_PORT", peerPort), ("RESP_PORT", respPort),
            ("ADVERTISE_HOST", advertiseHost),
            ("EVENT_LOOPS", eventLoops),
            ("MAX_CONNECTIONS", maximumConnections), ("REQUEST_READ_TIMEOUT_MS", requestReadTimeoutMs),
            ("IDLE_TIMEOUT_MS", idleTimeoutMs),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }
}

/// Storage and limits settings.
struct StorageOptions: ParsableArguments {
    @Option(name: .customLong("wal-dir"), parsing: .unconditional, help: setting("WAL_DIR"))
    var walDir: String?
    @Option(name: .customLong("wal-sync"), parsing: .unconditional, help: setting("WAL_SYNC"))
    var walSync: String?
    @Option(name: .customLong("wal-sync-interval-ms"), parsing: .unconditional, help: setting("WAL_SYNC_INTERVAL_MS"))
    var walSyncIntervalMs: String?
    @Option(name: .customLong("wal-compact-min-mb"), parsing: .unconditional, help: setting("WAL_COMPACT_MIN_MB"))
    var walCompactMinMb: String?
    @Option(name: .customLong("wal-compact-ratio"), parsing: .unconditional, help: setting("WAL_COMPACT_RATIO"))
    var walCompactRatio: String?
    @Option(name: .customLong("max-memory-mb"), parsing: .unconditional, help: setting("MAX_MEMORY_MB"))
    var maximumMemoryMb: String?
    @Option(name: .customLong("max-size"), parsing: .unconditional, help: setting("MAX_SIZE"))
    var maximumSize: String?
    @Option(name: .customLong("ttl-default"), parsing: .unconditional, help: setting("TTL_DEFAULT"))
    var ttlDefault: String?

    /// The flags given, by key name.
    var given: [String: String] {
        let all: [(String, String?)] = [
            ("WAL_DIR", walDir), ("WAL_SYNC", walSync), ("WAL_SYNC_INTERVAL_MS", walSyncIntervalMs),
            ("WAL_COMPACT_MIN_MB", walCompactMinMb), ("WAL_COMPACT_RATIO", walCompactRatio),
            ("MAX_MEMORY_MB", maximumMemoryMb), ("MAX_SIZE", maximumSize), ("TTL_DEFAULT", ttlDefault),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }
}

/// Cluster settings.
struct ClusterOptions: ParsableArguments {
    @Option(name: .customLong("node-id"), parsing: .unconditional, help: setting("NODE_ID"))
    var nodeId: String?
    @Option(name: .customLong("seeds"), parsing: .unconditional, help: setting("SEEDS"))
    var seeds: String?
    @Option(name: .customLong("replication-factor"), parsing: .unconditional, help: setting("REPLICATION_FACTOR"))
    var replicationFactor: String?
    @Option(name: .customLong("consistency"), parsing: .unconditional, help: setting("CONSISTENCY"))
    var consistency: String?
    @Option(name: .customLong("gossip-interval"), parsing: .unconditional, help: setting("GOSSIP_INTERVAL"))
    var gossipInterval: String?
    @Option(name: .customLong("heartbeat-interval"), parsing: .unconditional, help: setting("HEARTBEAT_INTERVAL"))
    var heartbeatInterval: String?
    @Option(name: .customLong("failure-timeout"), parsing: .unconditional, help: setting("FAILURE_TIMEOUT"))
    var failureTimeout: String?
    @Option(name: .customLong("max-clock-offset-ms"), parsing: .unconditional, help: setting("MAX_CLOCK_OFFSET_MS"))
    var maximumClockOffsetMs: String?

    /// The flags given, by key name.
    var given: [String: String] {
        let all: [(String, String?)] = [
            ("NODE_ID", nodeId), ("SEEDS", seeds), ("REPLICATION_FACTOR", replicationFactor),
            ("CONSISTENCY", consistency), ("GOSSIP_INTERVAL", gossipInterval),
            ("HEARTBEAT_INTERVAL", heartbeatInterval), ("FAILURE_TIMEOUT", failureTimeout),
            ("MAX_CLOCK_OFFSET_MS", maximumClockOffsetMs),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }
}

/// Who may talk to the node: peers' secrets, clients' tokens, TLS.
struct SecurityOptions: ParsableArguments {
    @Option(name: .customLong("cluster-secret-file"), parsing: .unconditional, help: setting("CLUSTER_SECRET_FILE"))
    var clusterSecretFile: String?
    @Option(
        name: .customLong("allow-unauthenticated-peers"), parsing: .unconditional,
        help: setting("ALLOW_UNAUTHENTICATED_PEERS"))
    var allowUnauthenticatedPeers: String?
    @Option(name: .customLong("tokens-file"), parsing: .unconditional, help: setting("TOKENS_FILE"))
    var tokensFile: String?
    @Option(name: .customLong("metrics-require-token"), parsing: .unconditional, help: setting("METRICS_REQUIRE_TOKEN"))
    var metricsRequireToken: String?
    @Option(name: .customLong("tls-cert-file"), parsing: .unconditional, help: setting("TLS_CERT_FILE"))
    var tlsCertFile: String?
    @Option(name: .customLong("tls-key-file"), parsing: .unconditional, help: setting("TLS_KEY_FILE"))
    var tlsKeyFile: String?

    /// The flags given, by key name.
    var given: [String: String] {
        let all: [(String, String?)] = [
            ("CLUSTER_SECRET_FILE", clusterSecretFile), ("ALLOW_UNAUTHENTICATED_PEERS", allowUnauthenticatedPeers),
            ("TOKENS_FILE", tokensFile), ("METRICS_REQUIRE_TOKEN", metricsRequireToken),
            ("TLS_CERT_FILE", tlsCertFile), ("TLS_KEY_FILE", tlsKeyFile),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }
}

/// Logging settings.
struct LoggingOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), parsing: .unconditional, help: setting("LOG_LEVEL"))
    var logLevel: String?
    @Option(name: .customLong("log-format"), parsing: .unconditional, help: setting("LOG_FORMAT"))
    var logFormat: String?
    @Option(name: .customLong("log-file"), parsing: .unconditional, help: setting("LOG_FILE"))
    var logFile: String?
    @Option(name: .customLong("log-file-max-mb"), parsing: .unconditional, help: setting("LOG_FILE_MAX_MB"))
    var logFileMaxMb: String?
    @Option(name: .customLong("slow-request-ms"), parsing: .unconditional, help: setting("SLOW_REQUEST_MS"))
    var slowRequestMs: String?
    @Option(name: .customLong("access-log"), parsing: .unconditional, help: setting("ACCESS_LOG"))
    var accessLog: String?

    /// The flags given, by key name.
    var given: [String: String] {
        let all: [(String, String?)] = [
            ("LOG_LEVEL", logLevel), ("LOG_FORMAT", logFormat), ("LOG_FILE", logFile),
            ("LOG_FILE_MAX_MB", logFileMaxMb), ("SLOW_REQUEST_MS", slowRequestMs), ("ACCESS_LOG", accessLog),
        ]
        return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
    }
}

#if INJECTED_BUGS
    /// Testing settings (test builds only).
    struct TestingOptions: ParsableArguments {
        @Option(name: .customLong("inject-bug"), parsing: .unconditional, help: setting("INJECT_BUG"))
        var injectBug: String?

        /// The flags given, by key name.
        var given: [String: String] {
            let all: [(String, String?)] = [("INJECT_BUG", injectBug)]
            return Dictionary(uniqueKeysWithValues: all.compactMap { name, value in value.map { (name, $0) } })
        }
    }
#endif
