import ArgumentParser
import CacheClient
import CacheCore
import Foundation

/// `cachectl`: reads, writes and operates a cache-node cluster from the command line.
///
/// Exit status: 0 done; 1 the key is not there (`get`, `del`); 2 the node refused the request as
/// invalid; 3 the cluster could not do it (unavailable, timed out, unreachable); 64 a usage error.
@main
struct CacheCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachectl",
        abstract: "Read, write and operate a cache-node cluster.",
        discussion: """
            Nodes are named by their HTTP address (host:port), from --node or CACHE_NODES \
            (comma-separated); the default is 127.0.0.1:8000.

            Exit status: 0 done, 1 key not found (get, del), 2 request refused as invalid, \
            3 cluster unavailable or unreachable, 64 usage error.
            """,
        version: "cachectl \(Release.version)",
        subcommands: [
            Get.self, Put.self, Delete.self, Status.self, Stats.self, Leave.self, Forget.self, Plan.self,
        ]
    )
}

/// What every command takes: where to connect and how long to try.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A node's HTTP address (host:port); repeat or separate with commas for several.",
            valueName: "host:port"))
    var node: [String] = []

    @Option(name: .long, help: "Give up after this many seconds, retries included.")
    var timeout: Double = 5

    @Option(
        name: .long,
        help: "The token for nodes with TOKENS_FILE (better: CACHE_TOKEN, which other users' ps cannot see).")
    var token: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Use HTTPS, trusting this PEM CA file (default: CACHE_TLS_CA).", valueName: "file"))
    var tlsCa: String?

    @Flag(name: .long, help: "Use HTTPS, trusting the system's certificate authorities.")
    var tls = false

    /// HTTPS, if asked for: `--tls-ca`, `CACHE_TLS_CA`, or `--tls`.
    var effectiveTLS: CacheClientConfig.TLS? {
        if let file = tlsCa ?? ProcessInfo.processInfo.environment["CACHE_TLS_CA"].flatMap({ $0.isEmpty ? nil : $0 }) {
            return CacheClientConfig.TLS(caFile: file)
        }
        return tls ? CacheClientConfig.TLS() : nil
    }

    /// The token to send: `--token`, else `CACHE_TOKEN`.
    var effectiveToken: String? {
        token ?? ProcessInfo.processInfo.environment["CACHE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The nodes to start from.
    var nodes: [String] {
        let given = node.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        if !given.isEmpty { return given }
        if let environment = ProcessInfo.processInfo.environment["CACHE_NODES"], !environment.isEmpty {
            return environment.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        return ["127.0.0.1:8000"]
    }

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number") }
    }

    /// Runs `body` with a client; failures become one line on stderr and an exit status.
    func withClient(_ body: (CacheClient) async throws -> Void) async throws {
        let config = CacheClientConfig(
            nodes: nodes, timeout: .milliseconds(Int64(timeout * 1000)), maximumRetries: 3, token: effectiveToken,
            tls: effectiveTLS)
        do {
            try await withCacheClient(config) { try await body($0) }
        } catch let error as CacheClientError {
            FileHandle.standardError.write(Data("cachectl: \(error)\n".utf8))
            switch error {
            case .invalidRequest, .invalidConfiguration: throw ExitCode(2)
            default: throw ExitCode(3)
            }
        } catch {
            // Anything else (a cancelled call, say) is the cluster not doing it: never status 1,
            // which means "not found".
            FileHandle.standardError.write(Data("cachectl: \(error)\n".utf8))
            throw ExitCode(3)
        }
    }
}

/// `--consistency`.
struct LevelOption: ParsableArguments {
    @Option(name: .long, help: "one, quorum or all (default: the node's CONSISTENCY).")
    var consistency: CacheConsistency?
}

extension CacheConsistency: ExpressibleByArgument {}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a key's value (exit status 1 when there is none).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var level: LevelOption
    @Argument(help: "The key.") var key: String

    func run() async throws {
        var found = false
        try await connection.withClient { client in
            if let value = try await client.get(key, consistency: level.consistency) {
                print(value)
                found = true
            }
        }
        if !found {
            FileHandle.standardError.write(Data("cachectl: \(key): not found\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store a value under a key.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var level: LevelOption
    @Option(name: .long, help: "Seconds the value lives (0: until deleted; default: the node's TTL_DEFAULT).")
    var ttl: Int?
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value.") var value: String

    func validate() throws {
        if let ttl, ttl < 0 { throw ValidationError("--ttl must be 0 or more seconds") }
    }

    func run() async throws {
        let ttl: CacheTTL = self.ttl.map { $0 == 0 ? .never : .seconds($0) } ?? .nodeDefault
        try await connection.withClient { client in
            try await client.put(key, value, ttl: ttl, consistency: level.consistency)
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del", abstract: "Delete a key (exit status 1 when it held nothing).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var level: LevelOption
    @Argument(help: "The key.") var key: String

    func run() async throws {
        var existed = false
        try await connection.withClient { client in
            existed = try await client.delete(key, consistency: level.consistency)
        }
        if !existed {
            FileHandle.standardError.write(Data("cachectl: \(key): not found\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The members as one node sees them, with each one's ring share, entries and memory.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Print /cluster's JSON instead of the table.") var json = false

    func run() async throws {
        try await connection.withClient { client in
            if json {
                print(try await client.rawJSON("/cluster"))
                return
            }
            let cluster = try await client.cluster()
            // Each live member's own figures, asked concurrently; a member that does not answer shows dashes.
            let stats = await withTaskGroup(of: (String, NodeStats?).self) { group in
                for member in cluster.members where member.status == "alive" || member.status == "suspect" {
                    group.addTask { (member.id, try? await client.stats(node: member.clientAddress)) }
                }
                var stats: [String: NodeStats] = [:]
                for await (id, figures) in group { stats[id] = figures }
                return stats
            }
            print(StatusTable.render(cluster, stats: stats))
        }
    }
}

/// The `status` table, as `nodetool status` lays it out.
enum StatusTable {
    static func render(_ cluster: ClusterStatus, stats: [String: NodeStats]) -> String {
        var lines: [String] = []
        lines.append(
            "cluster: \(cluster.ringMembers) key owners, replication factor \(cluster.replicationFactor)"
                + " (effective \(cluster.effectiveReplicationFactor)), ring \(cluster.ringVersion), seen by \(cluster.nodeID)"
        )
        if cluster.handoffBacklog > 0 { lines.append("handoff backlog: \(cluster.handoffBacklog) writes") }
        if cluster.rebalancing { lines.append("rebalancing: keys are moving to their new owners") }
        lines.append("")
        let header = ["STATE", "ID", "ADDRESS", "RING SHARE", "ENTRIES", "MEMORY", "LAST CONTACT"]
        var rows: [[String]] = []
        for member in cluster.members.sorted(by: { $0.id < $1.id }) {
            let figures = stats[member.id]
            rows.append([
                member.status.uppercased(), member.id, member.clientAddress,
                String(format: "%.1f%%", member.ringShare * 100),
                figures.map { "\($0.entries)" } ?? "-",
                figures.map { bytes($0.bytes.jemallocAllocated ?? $0.bytes.estimated) } ?? "-",
                member.lastContactSeconds.map { String(format: "%.1fs ago", $0) } ?? "never",
            ])
        }
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        lines.append(line(header))
        lines.append(contentsOf: rows.map(line))
        return lines.joined(separator: "\n")
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        let (value, unit) = ByteScale.scaled(count, maximumUnit: units.count - 1)
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One node's counters, or the whole cluster's.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Print the JSON the node answers with.") var json = false
    @Flag(name: .long, help: "Every live member's counters and their totals (/cluster/stats).") var cluster = false

    func run() async throws {
        try await connection.withClient { client in
            let node = connection.nodes[0]
            if json || cluster {
                print(try await client.rawJSON(cluster ? "/cluster/stats" : "/stats", node: node))
                return
            }
            let stats = try await client.stats(node: node)
            let rows: [(String, String)] = [
                ("node", stats.nodeID), ("status", stats.status),
                ("uptime", String(format: "%.0f s", stats.uptimeSeconds)),
                ("entries", "\(stats.entries)"), ("tombstones", "\(stats.tombstones)"),
                ("memory", StatusTable.bytes(stats.bytes.jemallocAllocated ?? stats.bytes.estimated)),
                ("memory limit", stats.limits.maximumMemoryBytes.map(StatusTable.bytes) ?? "none"),
                ("entry limit", stats.limits.maximumEntries.map { "\($0)" } ?? "none"),
                ("gets", "\(stats.ops.get) (\(stats.hits) hits, \(stats.misses) misses)"),
                ("puts", "\(stats.ops.put)"), ("deletes", "\(stats.ops.delete)"),
                ("evictions", "\(stats.evictions)"), ("expirations", "\(stats.expirations)"),
            ]
            let width = rows.map(\.0.count).max() ?? 0
            for (name, value) in rows {
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
            }
        }
    }
}

struct Leave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a node leave the cluster for good; it hands its keys to the others first.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The member's id, or its HTTP address.") var member: String

    func run() async throws {
        try await connection.withClient { client in
            let address = try await Self.address(of: member, client: client)
            try await client.leave(node: address)
            print("\(member) is leaving: it hands its keys to their owners, then stops serving")
        }
    }

    /// The HTTP address of `member`, an id or already an address.
    static func address(of member: String, client: CacheClient) async throws -> String {
        let cluster = try await client.cluster()
        if let found = cluster.members.first(where: { $0.id == member }) { return found.clientAddress }
        if cluster.members.contains(where: { $0.clientAddress == member }) || member.contains(":") { return member }
        throw CacheClientError.invalidRequest(
            status: 404, message: "no member \(member) (members: \(cluster.members.map(\.id).joined(separator: ", ")))")
    }
}

struct Forget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop a dead member that will not return; its keys go to the others.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The member's id.") var member: String

    func run() async throws {
        try await connection.withClient { client in
            try await client.forget(member)
            print("\(member) forgotten: the other members now own its keys")
        }
    }
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What adding or removing members would move (a dry run: nothing changes).")

    @OptionGroup var connection: ConnectionOptions
    @Option(name: .long, help: ArgumentHelp("A member to add.", valueName: "id@host:port")) var add: [String] = []
    @Option(name: .long, help: ArgumentHelp("A member to remove.", valueName: "id")) var remove: [String] = []

    func validate() throws {
        if add.isEmpty && remove.isEmpty { throw ValidationError("name at least one --add or --remove") }
    }

    func run() async throws {
        try await connection.withClient { client in
            print(try await client.plan(adding: add, removing: remove))
        }
    }
}
