import AsyncHTTPClient
import CacheCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One node as the server runs it: the node state machine behind its driver, the clock that feeds
/// it, its metrics, and its lifecycle (what `/health` reports).
///
/// Every decision about entries is `ClusterNode`'s; this type supplies time, answers the status
/// routes from the node's loop, and keeps the lifecycle.
public final class CacheNode: Sendable {
    /// This release's version, as `--version`, the start-up log and `/stats` show it.
    public static let version = Release.version

    /// Where the node is in its life, as `/health` reports it.
    public enum Lifecycle: UInt8, Sendable {
        /// Loading state; not yet serving (503).
        case starting = 0
        /// Serving requests (200).
        case serving = 1
        /// Shutting down: finishing what is in flight, refusing new work (503).
        case draining = 2
    }

    public let configuration: NodeConfiguration
    public let metrics: NodeMetrics
    /// The access log and slow-request lines.
    let requestLog: RequestLog
    public let clock: NodeClock
    let logger: Logger
    let driver: NodeDriver
    private let lifecycleState = Atomic<UInt8>(Lifecycle.starting.rawValue)
    /// The port actually listened on (differs from the configured one when that was 0).
    private let boundPort = Atomic<Int>(0)
    /// The node's name and addresses, once it started.
    private let identityBox = Mutex<NodeIdentity?>(nil)
    /// The cluster page's live feed.
    let feed = ClusterFeed()
    /// Yields once when the node asked to leave has handed everything off.
    public let leaveCompleted: AsyncStream<Void>
    private let leaveContinuation: AsyncStream<Void>.Continuation

    /// A node whose state machine lives on `loop`; `seed` decides its sampling (random by default).
    public init(
        configuration: NodeConfiguration, logger: Logger, loop: any EventLoop, seed: UInt64 = .random(in: .min ... .max)
    ) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = NodeMetrics()
        self.requestLog = RequestLog(
            logger: logger, accessLog: configuration.accessLog, slowThreshold: configuration.slowRequestThreshold)
        self.clock = NodeClock()
        self.httpConnections = ConnectionLimiter(limit: configuration.maximumConnections)
        self.peerConnections = ConnectionLimiter(limit: configuration.maximumConnections)
        self.clientTokens = configuration.clientTokens.map { tokens in
            let path = configuration.tokensFile ?? ""
            return ClientTokensBox(tokens, path: path) { try ClientTokens(contentsOf: path) }
        }
        self.driver = NodeDriver(
            configuration: configuration, clock: clock, metrics: metrics, logger: logger, loop: loop, seed: seed)
        (leaveCompleted, leaveContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    /// The node's name, and where peers and clients reach it, once it started.
    var identity: NodeIdentity? { identityBox.withLock { $0 } }

    /// The node's name (`NODE_ID`, or `ADVERTISE_HOST:PORT` with the port bound).
    public var nodeID: String { identity?.nodeID ?? configuration.nodeID }

    /// Recovers from `WAL_DIR` (when set) and starts the node, listening for clients on `httpPort` and
    /// for peers on `peerPort` (the ports bound). Until it returns the node is `starting`; it logs what
    /// recovery found and dropped.
    public func start(httpPort: Int, peerPort: Int) async throws {
        let started = ContinuousClock.now
        let host = configuration.advertiseHost
        let identity = NodeIdentity(
            nodeID: configuration.nodeIDGiven ? configuration.nodeID : "\(host):\(httpPort)",
            peerAddress: "\(host):\(peerPort)", clientAddress: "\(host):\(httpPort)")
        identityBox.withLock { $0 = identity }
        let continuation = leaveContinuation
        try await driver.setLeaveHandler { continuation.yield(()) }
        guard let outcome = try await driver.start(as: identity) else { return }
        let report = outcome.report
        logger.info(
            "recovered",
            metadata: [
                "wal_dir": "\(configuration.walDirectory ?? "")", "sync": "\(configuration.syncPolicy)",
                "snapshot_sequence": report.snapshotSequence.map { .number(Int($0)) } ?? "none",
                "snapshot_entries": .number(report.snapshotEntries),
                "replayed_records": .number(report.replayedRecords), "members": .number(report.members),
                "migrated_records": .number(report.legacyRecords), "expired_dropped": .number(report.expiredDropped),
                "dropped_bytes": .number(report.droppedBytes), "last_sequence": .number(Int(report.lastSequence)),
                "entries": .number(outcome.store.statistics.liveEntries),
                "duration_seconds": .number(started.duration(to: .now).secondsValue),
            ])
        for problem in report.problems {
            logger.warning("recovery dropped data", metadata: ["problem": "\(problem)"])
        }
    }

    /// The bound on open client connections (`MAX_CONNECTIONS`).
    let httpConnections: ConnectionLimiter
    /// The bound on open peer connections (`MAX_CONNECTIONS`).
    let peerConnections: ConnectionLimiter

    /// The clients' tokens (`TOKENS_FILE`), when clients must present one.
    let clientTokens: ClientTokensBox?

    /// Why a request for `route` with `headers` is refused (401 or 403, and what to say), or `nil`
    /// when it may go on: tokens are off, the route is open, or the token has the role it needs.
    func authorize(_ route: APIRoute, headers: HTTPHeaders) -> (status: HTTPResponseStatus, message: String)? {
        guard let clientTokens, let needed = route.requiredRole(protectingMetrics: configuration.metricsRequireToken)
        else { return nil }
        guard let field = headers.first(name: "authorization"),
            field.utf8.count > 7, field.prefix(7).lowercased() == "bearer "
        else {
            return (.unauthorized, "this node needs a token: send Authorization: Bearer TOKEN")
        }
        guard let role = clientTokens.value.role(of: field.utf8.dropFirst(7)) else {
            return (.unauthorized, "the token is not one this node accepts")
        }
        guard role >= needed else {
            return (.forbidden, "the token's role '\(role)' may not do this; it needs '\(needed)'")
        }
        return nil
    }

    /// Rereads the files of secrets (`CLUSTER_SECRET_FILE`, `TOKENS_FILE`) and the TLS certificate:
    /// what SIGHUP does. A file that cannot be read or is invalid leaves what is in force as it was.
    public func reloadSecrets() {
        reload(clientTokens, "the client tokens")
        reload(configuration.tls?.context, "the TLS certificate")
        reload(driver.peerKeyring, "the cluster secrets")
    }

    private func reload<Value>(_ file: ReloadableFile<Value>?, _ what: String) {
        guard let file else { return }
        do {
            try file.reload()
            logger.notice("reloaded \(what)", metadata: ["file": "\(file.path)"])
        } catch {
            logger.error(
                "cannot reload \(what); what was in force stays",
                metadata: ["file": "\(file.path)", "error": "\(error)"])
        }
    }

    /// Stops the node's timers and syncs and closes its log.
    public func stop() async {
        await driver.shutdown()
    }

    /// The node's current lifecycle state.
    public var lifecycle: Lifecycle {
        Lifecycle(rawValue: lifecycleState.load(ordering: .acquiring)) ?? .starting
    }

    /// Moves the node to `state`.
    public func transition(to state: Lifecycle) {
        lifecycleState.store(state.rawValue, ordering: .releasing)
        logger.info("lifecycle", metadata: ["state": "\(state)"])
    }

    /// Records the port the server is listening on.
    public func didBind(port: Int) {
        boundPort.store(port, ordering: .releasing)
    }

    /// The port the server listens on, once bound.
    public var port: Int { boundPort.load(ordering: .acquiring) }

    /// The node's counters (tests and tools).
    public func statistics() async throws -> StoreStatistics {
        try await driver.inspect(from: driver.loop) { $0.node?.statistics ?? StoreStatistics() }.get()
    }

    // MARK: Status documents, built on the node's loop

    /// What `/health` answers: the status word and, when the disk failed, why writes are refused.
    func health(from loop: any EventLoop) -> EventLoopFuture<(status: String, reason: String?)> {
        let lifecycle = self.lifecycle
        return driver.inspect(from: loop) { state in
            let failure = state.node?.log?.failure
            let status = lifecycle != .serving ? "\(lifecycle)" : failure == nil ? "ok" : "degraded"
            return (status, failure.map { "writes refused: \($0)" })
        }
    }

    /// The JSON document `/stats` answers with.
    func statsDocument(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let lifecycle = self.lifecycle
        let metrics = self.metrics
        let configuration = self.configuration
        let uptime = clock.elapsed
        return driver.inspect(from: loop) { state in
            let statistics = state.node?.statistics ?? StoreStatistics()
            let limits = configuration.storeLimits
            let document: [String: Any] = [
                "node_id": state.identity?.nodeID ?? configuration.nodeID,
                "status": "\(lifecycle)",
                "version": CacheNode.version,
                // Milliseconds are as fine as a reader needs (and no float noise such as 10.693093127000001).
                "uptime_seconds": (uptime.secondsValue * 1000).rounded() / 1000,
                "entries": statistics.entries,
                "tombstones": statistics.tombstones,
                "bytes": [
                    "estimated": statistics.estimatedBytes,
                    "jemalloc_allocated": Jemalloc.allocatedBytes() as Any? ?? NSNull(),
                    "jemalloc_resident": Jemalloc.residentBytes() as Any? ?? NSNull(),
                ],
                "limits": [
                    "max_entries": limits.maximumEntries as Any? ?? NSNull(),
                    "max_memory_bytes": limits.maximumMemoryBytes as Any? ?? NSNull(),
                    "max_key_bytes": limits.maximumKeyBytes,
                    "max_value_bytes": limits.maximumValueBytes,
                ],
                "hits": statistics.hits,
                "misses": statistics.misses,
                "evictions": statistics.evictions,
                "expirations": statistics.expirations,
                "ops": ["get": statistics.gets, "put": statistics.puts, "delete": statistics.deletes],
                "replication": [
                    "unavailable": statistics.unavailable, "read_repairs": statistics.readRepairs,
                    "anti_entropy_rounds": statistics.antiEntropyRounds,
                    "anti_entropy_keys_pushed": statistics.antiEntropyKeysPushed,
                    "handoffs_delivered": statistics.handoffsDelivered,
                ],
                "persistence": Self.persistenceDocument(state),
                "backlog": [
                    "handoff": state.node?.handoffBacklog ?? 0,
                    "tombstones": state.node?.store.tombstoneBacklog ?? 0,
                ],
                "http": Self.httpDocument(metrics),
            ]
            return Self.serialize(document)
        }
    }

    /// The data routes' answers since start: how many, how many 503s, and their latency histogram
    /// (cumulative counts at or below each bound), from which a reader of two documents takes the
    /// percentiles of the time between them.
    private static func httpDocument(_ metrics: NodeMetrics) -> [String: Any] {
        var routes: [String: Any] = [:]
        for route in [RouteName.get, .put, .delete] {
            let latency = metrics.latency(route)
            routes[route.rawValue] = [
                "answered": latency.count, "unavailable": metrics.answered(route, status: 503),
                "latency_buckets": latency.cumulative,
            ]
        }
        return ["latency_bounds_seconds": NodeMetrics.requestBuckets, "routes": routes]
    }

    private static func persistenceDocument(_ state: DriverState) -> Any {
        guard let path = state.configuration.walDirectory else { return "disabled" }
        guard let log = state.node?.log, let report = state.recovery else { return "starting" }
        return [
            "wal_dir": path,
            "sync": "\(state.configuration.syncPolicy)",
            "state": log.failure.map { "failed: \($0)" } ?? "ok",
            "last_sequence": log.lastSequence,
            "written_sequence": log.writtenSequence,
            "synced_sequence": log.syncedSequence,
            "log_bytes": log.logBytes,
            "compactions": state.files?.compactions ?? 0,
            "recovery": [
                "snapshot_sequence": report.snapshotSequence as Any? ?? NSNull(),
                "snapshot_entries": report.snapshotEntries,
                "replayed_records": report.replayedRecords,
                "members": report.members,
                "migrated_records": report.legacyRecords,
                "expired_dropped": report.expiredDropped,
                "dropped_bytes": report.droppedBytes,
                "problems": report.problems,
            ],
        ] as [String: Any]
    }

    /// Whether load balancers may send traffic: recovered, serving, joined (when it has seeds, it has
    /// met another member) and not leaving. The status word says which.
    func readiness(from loop: any EventLoop) -> EventLoopFuture<(ready: Bool, status: String)> {
        let lifecycle = self.lifecycle
        return driver.inspect(from: loop) { state in Self.readiness(state, lifecycle: lifecycle) }
    }

    /// Readiness as the node's loop sees it: the process's lifecycle, then the node's own
    /// (``ClusterNode/readiness``).
    static func readiness(_ state: DriverState, lifecycle: Lifecycle) -> (ready: Bool, status: String) {
        guard lifecycle == .serving, let node = state.node else { return (false, "\(lifecycle)") }
        let readiness = node.readiness
        return (readiness == .ready, readiness.rawValue)
    }

    /// The JSON document `/cluster` answers with: every member as this node sees it, the ring, the
    /// backlogs.
    func clusterDocument(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let configuration = self.configuration
        let now = clock.now()
        return driver.inspect(from: loop) { state in
            guard let node = state.node else { return Self.serialize(["status": "starting"]) }
            let shares = node.ring.primaryShares
            let members: [[String: Any]] = node.membership.view.map { update in
                var member: [String: Any] = [
                    "id": update.id.rawValue, "address": update.address, "client_address": update.clientAddress,
                    "status": "\(update.status)", "incarnation": update.incarnation,
                    "ring_share": ((shares[update.id] ?? 0) * 10_000).rounded() / 10_000,
                ]
                if update.id == node.me {
                    member["last_contact_seconds"] = 0
                } else if let contact = node.membership.lastContact(with: update.id) {
                    member["last_contact_seconds"] = (Double(contact.nanoseconds(to: now)) / 1e8).rounded() / 10
                } else {
                    member["last_contact_seconds"] = NSNull()
                }
                return member
            }
            var leaving: Any = NSNull()
            if case .leaving(let keys) = node.leaveState { leaving = ["keys_to_hand_off": keys] }
            let document: [String: Any] = [
                "node_id": node.me.rawValue,
                "ring_version": Self.hexadecimal(node.ringVersion),
                "ring_members": node.ring.members.count,
                "virtual_nodes": node.ring.virtualNodes,
                "replication_factor": configuration.replicationFactor,
                "effective_replication_factor": node.effectiveReplicationFactor,
                "consistency": configuration.consistency.rawValue,
                "members": members,
                "handoff_backlog": node.handoffBacklog,
                "tombstones": node.store.statistics.tombstones,
                "rebalancing": !node.store.isIndexed,
                "leaving": leaving,
                "seeds": configuration.seeds.map(\.description),
            ]
            return Self.serialize(document)
        }
    }

    /// The result of an administrative request: a status and a JSON body.
    typealias AdminAnswer = (status: Int, body: [UInt8])

    /// `POST /cluster/leave`.
    func leave(from loop: any EventLoop) -> EventLoopFuture<AdminAnswer> {
        driver.withNode(from: loop) { node, now in
            switch node.leave(now: now) {
            case .success(let effects):
                return (effects, (202, Self.serialize(["status": "leaving", "keys_to_hand_off": node.store.count])))
            case .failure(.noOtherMember):
                return ([], (409, Self.serialize(["error": "no other member is alive to receive this node's keys"])))
            }
        }
    }

    /// `DELETE /cluster/members/{id}`.
    func forget(_ member: String, from loop: any EventLoop) -> EventLoopFuture<AdminAnswer> {
        driver.withNode(from: loop) { node, now in
            switch node.forget(NodeID(member), now: now) {
            case .success(let effects):
                return (effects, (200, Self.serialize(["status": "left", "member": member])))
            case .failure(.unknown):
                return ([], (404, Self.serialize(["error": "no member \(member)"])))
            case .failure(.notDead(let status)):
                let message =
                    "\(member) is \(status): only a dead member can be forgotten; a live one leaves with POST /cluster/leave"
                return ([], (409, Self.serialize(["error": message])))
            }
        }
    }

    /// `GET /cluster/plan`: what adding and removing members would move.
    func plan(adding: [String], removing: [String], from loop: any EventLoop) -> EventLoopFuture<AdminAnswer> {
        let factor = configuration.replicationFactor
        return driver.inspect(from: loop) { state in
            guard let node = state.node else { return (503, Self.serialize(["error": "node is starting"])) }
            let current = node.ring.members
            // Bytes, not characters: "@" followed by a combining mark is one Character.
            let adds = adding.map { item in
                NodeID(String(decoding: item.utf8.prefix { $0 != UInt8(ascii: "@") }, as: UTF8.self))
            }
            let removes = removing.map(NodeID.init)
            if let invalid = (adds + removes).first(where: { !NodeID.isValid($0.rawValue) }) {
                let message = "\"\(invalid)\" is not a member name (1 to 128 letters, digits, '.', '_', ':' or '-')"
                return (400, Self.serialize(["error": message]))
            }
            if let stranger = removes.first(where: { !current.contains($0) }) {
                return (404, Self.serialize(["error": "\(stranger) is not a key owner"]))
            }
            if let known = adds.first(where: { current.contains($0) }) {
                return (409, Self.serialize(["error": "\(known) is already a key owner"]))
            }
            let plan = RingPlan.compute(current: current, adding: adds, removing: removes, replicationFactor: factor)
            // Keys are not counted anywhere in one place: this node's count and share estimate the total.
            let mine = plan.members.first { $0.id == node.me }
            let localKeys = Double(node.store.statistics.liveEntries)
            let total = mine.map { $0.before > 0 ? localKeys / $0.before : 0 } ?? 0
            func rounded(_ share: Double) -> Double { (share * 10_000).rounded() / 10_000 }
            let members: [[String: Any]] = plan.members.map { member in
                [
                    "id": member.id.rawValue, "share_before": rounded(member.before),
                    "share_after": rounded(member.after), "receives": rounded(member.receives),
                    "gives_up": rounded(member.givesUp), "estimated_keys_received": Int(member.receives * total),
                    "change": adds.contains(member.id) ? "added" : removes.contains(member.id) ? "removed" : "kept",
                ]
            }
            let document: [String: Any] = [
                "replication_factor": factor, "moved_share": rounded(plan.moved),
                "estimated_keys_moved": Int(plan.moved * total), "members": members,
                "note": "a dry run: nothing was changed",
            ]
            return (200, Self.serialize(document))
        }
    }

    /// `GET /cluster/stats`: every live member's `/stats`, gathered by this node, and their totals.
    func clusterStats(authorization: String?) async -> [UInt8] {
        let members =
            (try? await driver.inspect(from: driver.loop) { state in
                state.node?.membership.view.filter { $0.status.isLive }.map { ($0.id.rawValue, $0.clientAddress) }
                    ?? []
            }.get()) ?? []
        let client = ClusterFeed.statsClient(configuration)
        defer { _ = client.shutdown() }
        var nodes: [[String: Any]] = []
        var totals: [String: Int] = [:]
        let gathered = await ClusterFeed.gatherStats(
            node: self, members: members.map { (id: $0.0, address: $0.1) }, client: client,
            authorization: authorization)
        for (id, result) in gathered {
            switch result {
            case .success(let stats):
                nodes.append(stats)
                for name in ["entries", "tombstones", "hits", "misses", "evictions", "expirations"] {
                    totals[name, default: 0] += stats[name] as? Int ?? 0
                }
                if let ops = stats["ops"] as? [String: Any] {
                    for (name, value) in ops { totals["ops_\(name)", default: 0] += value as? Int ?? 0 }
                }
            case .failure(let error):
                nodes.append(["node_id": id, "error": "\(error)"])
            }
        }
        nodes.sort { ($0["node_id"] as? String ?? "") < ($1["node_id"] as? String ?? "") }
        return Self.serialize(["asked": nodeID, "members": nodes, "totals": totals])
    }

    /// The `/metrics` exposition.
    func metricsExposition(from loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let metrics = self.metrics
        let httpLimiter = httpConnections
        let peerLimiter = peerConnections
        let memoryLimit = configuration.maximumMemoryBytes
        let uptime = clock.elapsed
        let lifecycle = self.lifecycle
        return driver.inspect(from: loop) { state in
            var snapshot = NodeMetrics.Snapshot()
            snapshot.allocatedBytes = Jemalloc.allocatedBytes()
            snapshot.residentBytes = Jemalloc.residentBytes()
            snapshot.memoryLimitBytes = memoryLimit
            snapshot.uptime = uptime
            snapshot.httpConnectionsOpen = httpLimiter.openConnections
            snapshot.httpConnectionsRefused = httpLimiter.refused
            snapshot.peerConnectionsOpen = peerLimiter.openConnections
            snapshot.peerConnectionsRefused = peerLimiter.refused
            if let node = state.node {
                snapshot.statistics = node.statistics
                snapshot.clockAhead = node.isClockAhead
                for member in node.membership.view { snapshot.membersByStatus["\(member.status)", default: 0] += 1 }
                snapshot.handoffBacklog = node.handoffBacklog
                snapshot.requestsInFlight = node.requestsInFlight
                snapshot.ready = Self.readiness(state, lifecycle: lifecycle).ready
                if let log = node.log {
                    snapshot.logBytes = log.logBytes
                    snapshot.diskFailed = log.failure != nil
                }
            }
            return metrics.exposition(snapshot)
        }
    }

    /// A ring version as 16 hexadecimal digits, as the `x-ring-version` header carries it.
    static func hexadecimal(_ version: UInt64) -> String {
        let digits = String(version, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func serialize(_ document: [String: Any]) -> [UInt8] {
        // Only dictionaries of strings, numbers and NSNull are passed in, so this cannot fail.
        let data = try! JSONSerialization.data(
            withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        return Array(data)
    }
}
