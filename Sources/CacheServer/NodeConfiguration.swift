import CacheCore
import Configuration
import Foundation
import Logging
import NIOCore
import SystemPackage

/// Everything a node is configured with, validated.
///
/// Values come from command-line flags, then a config file, then environment variables: the first
/// source that sets a key wins. Every key has one name everywhere (`PORT` in the environment and
/// the file, `--port` as a flag). An unknown key in the file or an invalid value anywhere stops the
/// node at start with a message naming the key.
public struct NodeConfiguration: Sendable, Equatable {
    /// A configuration key, its environment and file name, and what it means.
    public struct Key: Sendable, Hashable {
        /// Where `--help` lists a key.
        public enum Group: String, Sendable, CaseIterable {
            case network = "Network", security = "Security", storage = "Storage and limits", cluster = "Cluster"
            case logging = "Logging", testing = "Testing"
        }

        /// The name in the environment and the config file, for example `MAX_MEMORY_MB`.
        public let name: String
        public let group: Group
        /// What the node uses when no source sets the key, as `--help` shows it.
        public let defaultValue: String
        /// A one-line explanation, for `--help` and the README.
        public let help: String
        /// Whether the value is masked where the configuration is logged (keys and tokens, later).
        public let isSecret: Bool

        init(_ name: String, _ group: Group, default defaultValue: String, _ help: String, secret: Bool = false) {
            self.name = name
            self.group = group
            self.defaultValue = defaultValue
            self.help = help
            self.isSecret = secret
        }

        /// The flag spelling, for example `--max-memory-mb`.
        public var flag: String { "--" + name.lowercased().replacingOccurrences(of: "_", with: "-") }
        /// The hierarchical key swift-configuration looks up; its environment spelling is `name`.
        var configKey: String { name.lowercased().replacingOccurrences(of: "_", with: ".") }
    }

    /// Every key the node understands.
    public static let keys: [Key] =
        [
            Key("NODE_ID", .cluster, default: "ADVERTISE_HOST:PORT", "This node's unique name in the cluster."),
            Key("HOST", .network, default: "127.0.0.1", "Address to listen on (0.0.0.0: every interface)."),
            Key("PORT", .network, default: "8000", "HTTP port for clients (0: a free port)."),
            Key("PEER_PORT", .network, default: "PORT + 1000", "Port other nodes connect to (0: a free port)."),
            Key(
                "RESP_PORT", .network, default: "none: off",
                "Redis-protocol port for redis-cli and Redis client libraries (0: a free port)."),
            Key(
                "ADVERTISE_HOST", .network, default: "HOST",
                "Host other nodes and clients reach this node at (HOST, or the machine's name when HOST is 0.0.0.0)."),
            Key("EVENT_LOOPS", .network, default: "cores - 1, at least 1", "Network threads."),
            Key(
                "MAX_CONNECTIONS", .network, default: "10000",
                "Open connections each port takes; past it new ones are closed at once."),
            Key(
                "REQUEST_READ_TIMEOUT_MS", .network, default: "10000",
                "A request must arrive whole within this long of its first byte (408 and close)."),
            Key(
                "IDLE_TIMEOUT_MS", .network, default: "60000",
                "A client connection with no request for this long is closed."),
            Key(
                "CLUSTER_SECRET_FILE", .security, default: "none: peers not authenticated",
                "File of cluster secrets, one per line (32+ bytes each): the first seals, all open; reread on SIGHUP."),
            Key(
                "ALLOW_UNAUTHENTICATED_PEERS", .security, default: "false",
                "true: let a node whose HOST reaches beyond loopback run without CLUSTER_SECRET_FILE."),
            Key(
                "TOKENS_FILE", .security, default: "none: clients need no token",
                "File of client tokens, lines 'read|write|admin TOKEN'; reread on SIGHUP."),
            Key(
                "METRICS_REQUIRE_TOKEN", .security, default: "false",
                "true: /metrics needs a read token too (/health and /ready never do)."),
            Key(
                "TLS_CERT_FILE", .security, default: "none: plain HTTP",
                "PEM certificate chain for HTTPS on PORT (with TLS_KEY_FILE); reread on SIGHUP."),
            Key("TLS_KEY_FILE", .security, default: "none", "PEM private key of TLS_CERT_FILE."),
            Key("WAL_DIR", .storage, default: "none: memory only", "Directory of the write-ahead log and snapshots."),
            Key("WAL_SYNC", .storage, default: "interval", "When the log is forced to disk: always, interval or none."),
            Key(
                "WAL_SYNC_INTERVAL_MS", .storage, default: "1000", "With WAL_SYNC=interval, milliseconds between syncs."
            ),
            Key("WAL_COMPACT_MIN_MB", .storage, default: "64", "Compact once the log holds at least this many MiB..."),
            Key("WAL_COMPACT_RATIO", .storage, default: "2", "...and at least this many times the live data."),
            Key("MAX_MEMORY_MB", .storage, default: "1024", "Memory in MiB before eviction (0: no limit)."),
            Key("MAX_SIZE", .storage, default: "0", "Entries before eviction (0: no limit)."),
            Key("TTL_DEFAULT", .storage, default: "0", "Seconds to live when a PUT gives no ttl (0: never expires)."),
            Key(
                "SEEDS", .cluster, default: "none: a node alone",
                "Comma-separated host:PEER_PORT of nodes to join through; names are resolved at each attempt."),
            Key("REPLICATION_FACTOR", .cluster, default: "3", "Copies kept of each key."),
            Key("CONSISTENCY", .cluster, default: "quorum", "Level of requests that name none: one, quorum or all."),
            Key("GOSSIP_INTERVAL", .cluster, default: "1s", "Membership protocol period (500ms, 2s, 1m)."),
            Key("HEARTBEAT_INTERVAL", .cluster, default: "500ms", "How long a probe waits for its answer."),
            Key(
                "FAILURE_TIMEOUT", .cluster, default: "5s",
                "How long a member stays suspect before it is declared dead."),
            Key(
                "REPLICA_TIMEOUT_MS", .cluster, default: "1000",
                "How long a request waits for its replicas before it answers that its level was not met (503)."),
            Key(
                "MAX_CLOCK_OFFSET_MS", .cluster, default: "500",
                "Most milliseconds a peer's version may be ahead of this node's clock; keep clocks closer (NTP)."),
            Key(
                "LOG_LEVEL", .logging, default: "info", "trace, debug, info, notice, warning, error or critical."),
            Key(
                "LOG_FORMAT", .logging, default: "json",
                "json (an object per line) or text (a readable line per event)."),
            Key(
                "LOG_FILE", .logging, default: "none: stdout only", "Also write the log to this file, rotated by size."),
            Key("LOG_FILE_MAX_MB", .logging, default: "64", "Size in MiB at which LOG_FILE is rotated."),
            Key(
                "SLOW_REQUEST_MS", .logging, default: "100",
                "Requests slower than this are logged (notice, at most one line a second; 0: never)."),
            Key(
                "ACCESS_LOG", .logging, default: "false", "true: one info line per HTTP request (route, status, time)."),
        ] + testingKeys

    /// Settings of test builds only: a release build has no deliberately wrong behaviour to switch on.
    #if INJECTED_BUGS
        static let testingKeys: [Key] = [
            Key(
                "INJECT_BUG", .testing, default: "none",
                "A deliberately wrong behaviour, for tests that prove a checker can fail (test builds only).")
        ]
    #else
        static let testingKeys: [Key] = []
    #endif

    /// Where a node expects a peer to listen.
    public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
        /// Host name or address.
        public var host: String
        /// TCP port.
        public var port: Int

        public var description: String { "\(host):\(port)" }
    }

    public var nodeID: String
    public var host: String
    public var port: Int
    public var walDirectory: String?
    public var syncPolicy: SyncPolicy
    public var compactionPolicy: CompactionPolicy
    /// `nil` means no memory limit.
    public var maximumMemoryBytes: Int?
    /// `nil` means no entry limit.
    public var maximumEntries: Int?
    public var replicationFactor: Int
    /// Applied when a PUT has no `ttl`; zero means entries never expire.
    public var defaultTTLSeconds: Int64
    public var gossipInterval: Duration
    public var heartbeatInterval: Duration
    public var failureTimeout: Duration
    public var seeds: [PeerAddress]
    public var logLevel: Logger.Level
    /// How log lines are written.
    public var logFormat: LogFormat
    public var logFile: String?
    public var logFileMaxBytes: Int
    /// Requests slower than this are logged (nil: never).
    public var slowRequestThreshold: Duration?
    /// Whether every request is logged.
    public var accessLog: Bool
    public var eventLoops: Int
    /// The port peers connect to (0: a free one, chosen at start).
    public var peerPort: Int
    /// The Redis-protocol port (`nil`: no Redis-protocol listener; 0: a free one).
    public var respPort: Int?
    /// The host other nodes and clients reach this node at.
    public var advertiseHost: String
    /// Whether `NODE_ID` was given (otherwise it is `ADVERTISE_HOST:PORT`, with the port actually bound).
    public var nodeIDGiven: Bool
    /// The level of requests that name none.
    public var consistency: ConsistencyLevel
    /// How far ahead of this node's clock a peer's version may be.
    public var maximumClockOffset: Duration
    /// How long a coordinated request waits for its replicas' answers.
    public var replicaTimeout: Duration
    /// Where the cluster's secrets are (`nil`: peers are not authenticated).
    public var clusterSecretFile: String?
    /// The secrets read from `clusterSecretFile` at start.
    var peerKeyring: PeerKeyring?
    /// Whether a node listening beyond loopback may run without peer authentication.
    public var allowUnauthenticatedPeers: Bool
    /// The most open connections each listening port takes.
    public var maximumConnections: Int
    /// How long a request may take to arrive whole, from its first byte.
    public var requestReadTimeout: Duration
    /// How long a client connection may stay without a request.
    public var idleTimeout: Duration
    /// Where the clients' tokens are (`nil`: clients need none).
    public var tokensFile: String?
    /// The tokens read from `tokensFile` at start.
    var clientTokens: ClientTokens?
    /// Whether `/metrics` needs a `read` token when tokens are on.
    public var metricsRequireToken: Bool
    /// HTTPS on the client port (`nil`: plain HTTP).
    var tls: HTTPTLS?
    /// A deliberately wrong behaviour (test builds only: always `nil` in a release build).
    public var injectedBug: ClusterNode.Configuration.InjectedBug?

    /// The store limits these settings imply.
    public var storeLimits: StoreLimits {
        StoreLimits(maximumEntries: maximumEntries, maximumMemoryBytes: maximumMemoryBytes)
    }

    /// The node state machine's settings these imply.
    public var clusterConfiguration: ClusterNode.Configuration {
        var configuration = ClusterNode.Configuration()
        configuration.replicationFactor = replicationFactor
        configuration.defaultTimeToLive = defaultTTLSeconds == 0 ? nil : .seconds(defaultTTLSeconds)
        configuration.limits = storeLimits
        configuration.compaction = compactionPolicy
        configuration.membership.protocolPeriod = gossipInterval
        configuration.membership.probeTimeout = heartbeatInterval
        configuration.membership.suspicionTimeout = failureTimeout
        configuration.readConsistency = consistency
        configuration.writeConsistency = consistency
        configuration.maximumClockOffset = maximumClockOffset
        configuration.requestTimeout = replicaTimeout
        configuration.injectedBug = injectedBug
        return configuration
    }

    /// How log lines are written.
    public enum LogFormat: String, Sendable, Equatable {
        case json, text
    }

    /// A configuration error: which key, and what is wrong with it.
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        /// The key at fault (or the config file's path).
        public var key: String
        /// What is wrong.
        public var problem: String

        public var description: String { "invalid configuration: \(key): \(problem)" }
    }

    /// Loads the configuration.
    ///
    /// - Parameters:
    ///   - flags: values given on the command line, by key name (`PORT`).
    ///   - configFile: a file of `KEY=value` lines (`#` starts a comment), if one was named.
    ///   - environment: the process environment.
    public static func load(
        flags: [String: String],
        configFile: String?,
        environment: [String: String]
    ) async throws -> NodeConfiguration {
        let known = Set(keys.map(\.name))
        var flagValues: [AbsoluteConfigKey: ConfigValue] = [:]
        for (name, value) in flags {
            guard let key = keys.first(where: { $0.name == name }) else {
                throw Error(key: name, problem: "unknown configuration key")
            }
            flagValues[AbsoluteConfigKey(ConfigKey(key.configKey))] = ConfigValue(.string(value), isSecret: false)
        }
        var providers: [any ConfigProvider] = [InMemoryProvider(name: "flags", values: flagValues)]
        var inFile: Set<String> = []
        if let configFile {
            inFile = try validateConfigFile(at: configFile, known: known)
            providers.append(try await EnvironmentVariablesProvider(environmentFilePath: FilePath(configFile)))
        }
        // Only our own keys are taken from the environment, so an unrelated variable never interferes.
        providers.append(
            EnvironmentVariablesProvider(environmentVariables: environment.filter { known.contains($0.key) }))
        let reader = ConfigReader(providers: providers)
        func raw(_ name: String) -> String? {
            guard let key = keys.first(where: { $0.name == name }) else {
                preconditionFailure("\(name) is not a configuration key")
            }
            return reader.string(forKey: ConfigKey(key.configKey))
        }
        var configuration = try NodeConfiguration(values: raw)
        configuration.settings = keys.map { key in
            let source: Setting.Source =
                if flags[key.name] != nil { .flag } else if inFile.contains(key.name) {
                    .file
                } else if environment[key.name] != nil { .environment } else { .default }
            let value = configuration.effectiveValue(of: key.name) ?? raw(key.name) ?? key.defaultValue
            return Setting(key: key.name, value: key.isSecret && source != .default ? "***" : value, source: source)
        }
        return configuration
    }

    /// One key's effective value and where it came from, as the node logs them at start.
    public struct Setting: Sendable, Equatable {
        public enum Source: String, Sendable {
            case `default`, environment, file, flag
        }

        public var key: String
        /// The value in force (`***` for a secret), or the default's description.
        public var value: String
        public var source: Source
    }

    /// Every key's effective value and source (filled by `load`; empty for a configuration built
    /// otherwise).
    public var settings: [Setting] = []

    /// The value in force for `name`, as a reader of the log wants it (the port chosen when PORT is 0
    /// is logged when the node listens, and NODE_ID then).
    func effectiveValue(of name: String) -> String? {
        switch name {
        case "NODE_ID": nodeIDGiven ? nodeID : "\(advertiseHost):PORT"
        case "HOST": host
        case "PORT": "\(port)"
        case "PEER_PORT": "\(peerPort)"
        case "RESP_PORT": respPort.map { "\($0)" } ?? "off"
        case "ADVERTISE_HOST": advertiseHost
        case "EVENT_LOOPS": "\(eventLoops)"
        case "WAL_DIR": walDirectory ?? "none (memory only)"
        case "MAX_MEMORY_MB": maximumMemoryBytes.map { "\($0 >> 20)" } ?? "0 (no limit)"
        case "MAX_SIZE": maximumEntries.map { "\($0)" } ?? "0 (no limit)"
        case "REPLICATION_FACTOR": "\(replicationFactor)"
        case "TTL_DEFAULT": "\(defaultTTLSeconds)"
        case "SEEDS": seeds.isEmpty ? "none" : seeds.map(\.description).joined(separator: ",")
        case "CONSISTENCY": consistency.rawValue
        case "LOG_LEVEL": logLevel.rawValue
        case "LOG_FORMAT": logFormat.rawValue
        case "LOG_FILE": logFile ?? "none"
        case "SLOW_REQUEST_MS":
            slowRequestThreshold.map { "\($0.nanoseconds / 1_000_000)" } ?? "0 (never)"
        case "ACCESS_LOG": "\(accessLog)"
        case "MAX_CLOCK_OFFSET_MS": "\(maximumClockOffset.nanoseconds / 1_000_000)"
        case "REPLICA_TIMEOUT_MS": "\(replicaTimeout.nanoseconds / 1_000_000)"
        case "CLUSTER_SECRET_FILE":
            clusterSecretFile.map { "\($0) (\(peerKeyring?.keys.count ?? 0) secrets)" } ?? "none"
        case "ALLOW_UNAUTHENTICATED_PEERS": "\(allowUnauthenticatedPeers)"
        case "TOKENS_FILE": tokensFile ?? "none"
        case "MAX_CONNECTIONS": "\(maximumConnections)"
        case "REQUEST_READ_TIMEOUT_MS": "\(requestReadTimeout.nanoseconds / 1_000_000)"
        case "IDLE_TIMEOUT_MS": "\(idleTimeout.nanoseconds / 1_000_000)"
        case "METRICS_REQUIRE_TOKEN": "\(metricsRequireToken)"
        case "TLS_CERT_FILE": tls?.certificatePath ?? "none"
        case "TLS_KEY_FILE": tls?.keyPath ?? "none"
        default: nil
        }
    }

    /// Builds a configuration from raw strings by key name, validating every one.
    init(values: (String) -> String?) throws {
        func value(_ name: String) -> String? {
            guard let raw = values(name)?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = value(name) else { return fallback }
            guard let parsed = Int(raw), range.contains(parsed) else {
                throw Error(
                    key: name, problem: "'\(raw)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return parsed
        }
        func duration(_ name: String, default fallback: Duration) throws -> Duration {
            guard let raw = value(name) else { return fallback }
            guard let parsed = Self.parseDuration(raw), parsed > .zero else {
                throw Error(key: name, problem: "'\(raw)' is not a positive duration such as 500ms, 2s or 1m")
            }
            return parsed
        }

        host = value("HOST") ?? "127.0.0.1"
        port = try integer("PORT", default: 8000, range: 0...65535)
        peerPort = try integer("PEER_PORT", default: port == 0 ? 0 : min(port + 1000, 65535), range: 0...65535)
        respPort = value("RESP_PORT") == nil ? nil : try integer("RESP_PORT", default: 0, range: 0...65535)
        let wildcard = host == "0.0.0.0" || host == "::" || host == "[::]"
        advertiseHost = value("ADVERTISE_HOST") ?? (wildcard ? ProcessInfo.processInfo.hostName : host)
        nodeIDGiven = value("NODE_ID") != nil
        nodeID = value("NODE_ID") ?? "\(advertiseHost):\(port)"
        guard NodeID.isValid(nodeID) else {
            throw Error(
                key: "NODE_ID", problem: "'\(nodeID)' must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"
            )
        }
        walDirectory = value("WAL_DIR")
        let interval = try integer("WAL_SYNC_INTERVAL_MS", default: 1000, range: 1...3_600_000)
        switch value("WAL_SYNC")?.lowercased() ?? "interval" {
        case "always": syncPolicy = .always
        case "interval": syncPolicy = .interval(.milliseconds(interval))
        case "none": syncPolicy = .none
        case let other: throw Error(key: "WAL_SYNC", problem: "'\(other)' is not one of always, interval, none")
        }
        compactionPolicy = CompactionPolicy(
            minimumLogBytes: try integer("WAL_COMPACT_MIN_MB", default: 64, range: 1...(1 << 20)) << 20,
            minimumRatio: try integer("WAL_COMPACT_RATIO", default: 2, range: 1...1000))
        let memoryMB = try integer("MAX_MEMORY_MB", default: 1024, range: 0...(1 << 30))
        maximumMemoryBytes = memoryMB == 0 ? nil : memoryMB << 20
        let entries = try integer("MAX_SIZE", default: 0, range: 0...Int(Int32.max))
        maximumEntries = entries == 0 ? nil : entries
        replicationFactor = try integer("REPLICATION_FACTOR", default: 3, range: 1...16)
        defaultTTLSeconds = Int64(try integer("TTL_DEFAULT", default: 0, range: 0...Int(PutRequest.maximumTTLSeconds)))
        gossipInterval = try duration("GOSSIP_INTERVAL", default: .seconds(1))
        heartbeatInterval = try duration("HEARTBEAT_INTERVAL", default: .milliseconds(500))
        failureTimeout = try duration("FAILURE_TIMEOUT", default: .seconds(5))
        seeds = try Self.parseSeeds(value("SEEDS") ?? "")
        let level = value("LOG_LEVEL") ?? "info"
        guard let parsedLevel = Logger.Level(rawValue: level.lowercased()) else {
            throw Error(
                key: "LOG_LEVEL",
                problem: "'\(level)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        logLevel = parsedLevel
        let format = value("LOG_FORMAT")?.lowercased() ?? "json"
        guard let parsedFormat = LogFormat(rawValue: format) else {
            throw Error(key: "LOG_FORMAT", problem: "'\(format)' is not one of json, text")
        }
        logFormat = parsedFormat
        logFile = value("LOG_FILE")
        logFileMaxBytes = try integer("LOG_FILE_MAX_MB", default: 64, range: 1...(1 << 20)) << 20
        let slowMilliseconds = try integer("SLOW_REQUEST_MS", default: 100, range: 0...3_600_000)
        slowRequestThreshold = slowMilliseconds == 0 ? nil : .milliseconds(slowMilliseconds)
        func boolean(_ name: String) throws -> Bool {
            switch value(name)?.lowercased() ?? "false" {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            case let other: throw Error(key: name, problem: "'\(other)' is not true or false")
            }
        }
        accessLog = try boolean("ACCESS_LOG")
        clusterSecretFile = value("CLUSTER_SECRET_FILE")
        if let path = clusterSecretFile {
            do {
                peerKeyring = try PeerKeyring(contentsOf: path)
            } catch {
                throw Error(key: "CLUSTER_SECRET_FILE", problem: "\(error)")
            }
        }
        allowUnauthenticatedPeers = try boolean("ALLOW_UNAUTHENTICATED_PEERS")
        tokensFile = value("TOKENS_FILE")
        if let path = tokensFile {
            do {
                clientTokens = try ClientTokens(contentsOf: path)
            } catch {
                throw Error(key: "TOKENS_FILE", problem: "\(error)")
            }
        }
        metricsRequireToken = try boolean("METRICS_REQUIRE_TOKEN")
        switch (value("TLS_CERT_FILE"), value("TLS_KEY_FILE")) {
        case (nil, nil):
            tls = nil
        case (let certificate?, let key?):
            do {
                tls = try HTTPTLS(certificatePath: certificate, keyPath: key)
            } catch {
                throw Error(key: "TLS_CERT_FILE", problem: "\(error)")
            }
        case (nil, _?):
            throw Error(key: "TLS_CERT_FILE", problem: "TLS_KEY_FILE is set: name the certificate too")
        case (_?, nil):
            throw Error(key: "TLS_KEY_FILE", problem: "TLS_CERT_FILE is set: name its private key too")
        }
        maximumConnections = try integer("MAX_CONNECTIONS", default: 10_000, range: 1...1_000_000)
        requestReadTimeout = .milliseconds(
            try integer("REQUEST_READ_TIMEOUT_MS", default: 10_000, range: 100...3_600_000))
        idleTimeout = .milliseconds(try integer("IDLE_TIMEOUT_MS", default: 60_000, range: 100...86_400_000))
        // Secure by default, as Redis's protected mode: a peer port others can reach takes frames only
        // from nodes that hold the cluster's secret, unless the operator says otherwise.
        if clusterSecretFile == nil, !allowUnauthenticatedPeers, !Self.isLoopback(host) {
            throw Error(
                key: "CLUSTER_SECRET_FILE",
                problem:
                    "HOST \(host) lets other machines reach the peer port, and peers are not authenticated: set "
                    + "CLUSTER_SECRET_FILE (docs/security.md), or ALLOW_UNAUTHENTICATED_PEERS=true if the network is yours alone"
            )
        }
        eventLoops = try integer("EVENT_LOOPS", default: Self.defaultEventLoops, range: 1...256)
        let consistencyName = value("CONSISTENCY")?.lowercased() ?? "quorum"
        guard let parsedConsistency = ConsistencyLevel(rawValue: consistencyName) else {
            throw Error(key: "CONSISTENCY", problem: "'\(consistencyName)' is not one of one, quorum, all")
        }
        consistency = parsedConsistency
        maximumClockOffset = .milliseconds(try integer("MAX_CLOCK_OFFSET_MS", default: 500, range: 1...60_000))
        replicaTimeout = .milliseconds(try integer("REPLICA_TIMEOUT_MS", default: 1_000, range: 10...60_000))
        injectedBug = nil
        #if INJECTED_BUGS
            if let bug = value("INJECT_BUG") {
                guard let parsedBug = ClusterNode.Configuration.InjectedBug(rawValue: bug) else {
                    throw Error(key: "INJECT_BUG", problem: "'\(bug)' is not a known bug")
                }
                injectedBug = parsedBug
            }
        #endif
    }

    /// Whether `host` is reachable from this machine only.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// One event loop per core but one: the kernel's network stack, upkeep timers and (with
    /// persistence) the log writer need a core too. Measured in `docs/http-server.md`.
    static var defaultEventLoops: Int { max(1, System.coreCount - 1) }

    /// Parses `500ms`, `2s`, `1m`, or a bare number of milliseconds.
    static func parseDuration(_ text: String) -> Duration? {
        let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            guard let amount = Int64(text.dropLast(unit.suffix.count)), amount >= 0,
                amount < Int64.max / unit.milliseconds
            else {
                return nil
            }
            return .milliseconds(amount * unit.milliseconds)
        }
        return Int64(text).map { .milliseconds($0) }
    }

    static func parseSeeds(_ text: String) throws -> [PeerAddress] {
        try text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map {
            seed in
            guard let colon = seed.lastIndex(of: ":"), let port = Int(seed[seed.index(after: colon)...]),
                (1...65535).contains(port), colon != seed.startIndex
            else {
                throw Error(key: "SEEDS", problem: "'\(seed)' is not host:port")
            }
            return PeerAddress(host: String(seed[..<colon]), port: port)
        }
    }

    /// Refuses a config file that names a key the node does not know, or has a line that is not
    /// `KEY=value`; returns the keys it sets.
    static func validateConfigFile(at path: String, known: Set<String>) throws -> Set<String> {
        let contents: String
        do {
            contents = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Error(key: path, problem: "cannot read config file (\(error.localizedDescription))")
        }
        var names: Set<String> = []
        for (number, line) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw Error(key: path, problem: "line \(number + 1) is not KEY=value")
            }
            let name = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            guard known.contains(name) else {
                throw Error(key: name, problem: "unknown configuration key in \(path) line \(number + 1)")
            }
            names.insert(name)
        }
        return names
    }
}
