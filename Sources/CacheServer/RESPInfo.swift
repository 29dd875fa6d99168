import CacheCore
import Foundation
import NIOCore

extension CacheNode {
    /// The sections `INFO` knows, in Redis's order.
    static let infoSections = [
        "server", "clients", "memory", "persistence", "stats", "replication", "cluster", "keyspace",
    ]

    /// `INFO`'s text: Redis's field names where Redis has the figure (what redis-cli, redis_exporter
    /// and client libraries read), this node's own under `cache_` names, gathered on the node's loop.
    func respInfo(sections asked: [String], from loop: any EventLoop) -> EventLoopFuture<RESPReply> {
        let wanted: [String]
        if asked.isEmpty || asked.contains(where: { ["all", "everything", "default"].contains($0) }) {
            wanted = Self.infoSections
        } else {
            wanted = Self.infoSections.filter { asked.contains($0) }
        }
        let configuration = self.configuration
        let uptime = Int(clock.elapsed.components.seconds)
        let connections = metrics.respConnections
        let commands = metrics.respCommandCounts
        let httpOpen = httpConnections.openConnections
        let port = configuration.respPort ?? 0
        let lifecycle = self.lifecycle
        return driver.inspect(from: loop) { state in
            let statistics = state.node?.statistics ?? StoreStatistics()
            let members = state.node?.membership.view.filter { $0.status == .alive }.count ?? 0
            var text = ""
            func section(_ name: String, _ fields: [(String, String)]) {
                guard wanted.contains(name) else { return }
                if !text.isEmpty { text += "\r\n" }
                text += "# \(name.prefix(1).uppercased() + name.dropFirst())\r\n"
                for (key, value) in fields { text += "\(key):\(value)\r\n" }
            }
            section(
                "server",
                [
                    ("redis_version", RESPCommandTable.compatibleVersion), ("redis_mode", "standalone"),
                    ("cache_node_version", CacheNode.version),
                    ("cache_node_id", state.identity?.nodeID ?? configuration.nodeID),
                    ("os", "Linux"), ("arch_bits", "64"),
                    ("process_id", "\(ProcessInfo.processInfo.processIdentifier)"),
                    ("tcp_port", "\(port)"), ("uptime_in_seconds", "\(uptime)"),
                    ("uptime_in_days", "\(uptime / 86_400)"),
                    ("cache_status", "\(lifecycle)"),
                ])
            section(
                "clients",
                [
                    ("connected_clients", "\(connections.open)"), ("cache_client_connections", "\(httpOpen)"),
                    ("maxclients", "\(configuration.maximumConnections)"), ("blocked_clients", "0"),
                ])
            let allocated = Jemalloc.allocatedBytes() ?? statistics.estimatedBytes
            let maximum = configuration.maximumMemoryBytes ?? 0
            section(
                "memory",
                [
                    ("used_memory", "\(allocated)"), ("used_memory_human", Self.human(allocated)),
                    ("used_memory_rss", "\(Jemalloc.residentBytes() ?? allocated)"),
                    ("cache_estimated_bytes", "\(statistics.estimatedBytes)"),
                    ("maxmemory", "\(maximum)"), ("maxmemory_human", Self.human(maximum)),
                    ("maxmemory_policy", "allkeys-lru"),
                    ("mem_allocator", Jemalloc.allocatedBytes() == nil ? "libc" : "jemalloc"),
                ])
            let log = state.node?.log
            section(
                "persistence",
                [
                    ("loading", lifecycle == .starting ? "1" : "0"), ("rdb_changes_since_last_save", "0"),
                    ("aof_enabled", configuration.walDirectory == nil ? "0" : "1"),
                    ("cache_wal_sync", configuration.walDirectory == nil ? "none" : "\(configuration.syncPolicy)"),
                    ("cache_wal_bytes", "\(log?.logBytes ?? 0)"),
                    ("cache_wal_state", log?.failure.map { "failed: \($0)" } ?? (log == nil ? "disabled" : "ok")),
                ])
            section(
                "stats",
                [
                    ("total_connections_received", "\(connections.total)"),
                    ("total_commands_processed", "\(commands.answered)"),
                    ("total_error_replies", "\(commands.failed)"),
                    ("keyspace_hits", "\(statistics.hits)"), ("keyspace_misses", "\(statistics.misses)"),
                    ("expired_keys", "\(statistics.expirations)"), ("evicted_keys", "\(statistics.evictions)"),
                    ("cache_gets", "\(statistics.gets)"), ("cache_puts", "\(statistics.puts)"),
                    ("cache_deletes", "\(statistics.deletes)"), ("cache_unavailable", "\(statistics.unavailable)"),
                    ("cache_read_repairs", "\(statistics.readRepairs)"),
                ])
            // Every member is a primary for some keys and a replica of others: Redis's
            // master/replica words do not fit, so the node says what it is in its own.
            section(
                "replication",
                [
                    ("role", "master"), ("connected_slaves", "0"),
                    ("cache_members_alive", "\(members)"),
                    ("cache_replication_factor", "\(configuration.replicationFactor)"),
                    ("cache_default_consistency", "\(configuration.consistency)"),
                    ("cache_handoffs_delivered", "\(statistics.handoffsDelivered)"),
                    ("cache_anti_entropy_rounds", "\(statistics.antiEntropyRounds)"),
                ])
            section("cluster", [("cluster_enabled", "0")])
            section("keyspace", statistics.entries > 0 ? [("db0", "keys=\(statistics.entries)")] : [])
            return .verbatim(text)
        }
    }

    private static func human(_ bytes: Int) -> String {
        let units = ["B", "K", "M", "G", "T"]
        let (value, unit) = ByteScale.scaled(bytes, maximumUnit: units.count - 1)
        return unit == 0 ? "\(bytes)B" : String(format: "%.2f%@", value, units[unit])
    }
}
