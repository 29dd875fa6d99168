import CacheCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A client of a cache-node cluster: it routes each key to one of its replicas, keeps pooled
/// keep-alive connections to every node, and fails over when a node is down.
///
/// It reads the membership (`GET /cluster`) from any of `config.nodes` on first use and again every
/// `topologyRefreshInterval`, at once after a refused connection or a timeout, and whenever an answer
/// carries a ring version other than its own. It places keys with the same ring code the nodes run,
/// sends each call to the key's first owner seen alive, and on a refused connection, a timeout or a
/// 503 tries the next owner, then any node, with exponential backoff and full jitter, within the
/// call's deadline. A node that failed is skipped for `downPeriod`, then probed (`GET /health`) in
/// the background until it answers.
///
/// Call `shutdown()` when done, or use `withCacheClient(_:logger:_:)`, or run the client as a
/// swift-service-lifecycle `Service`.
///
/// ```swift
/// try await withCacheClient(CacheClientConfig(nodes: ["127.0.0.1:8000"])) { cache in
///     try await cache.put("user:1", "Ada", ttl: .seconds(60))
///     let name = try await cache.get("user:1")  // "Ada"
/// }
/// ```
public final class CacheClient: Sendable {
    /// The client's settings.
    public let config: CacheClientConfig
    let logger: Logger
    let metrics = ClientMetrics()
    /// The TLS context every node's connections share (`nil`: plain HTTP).
    private let tls: NIOSSLContext?
    private let state: Mutex<State>
    /// `config.nodes`, parsed once.
    private let configuredNodes: [NodeAddress]

    /// The calls the client makes, as metrics label them.
    enum Operation: String, CaseIterable, Sendable {
        case get, put, delete, stats, health, cluster, leave, forget, plan
    }

    /// What the client knows, behind one lock held only for short updates.
    private struct State {
        var topology: Topology?
        var refreshedAt: ContinuousClock.Instant?
        var refresh: Task<Void, Never>?
        var nodes: [NodeAddress: NodeHealth] = [:]
        var probes: [NodeAddress: Task<Void, Never>] = [:]
        var isShutDown = false
    }

    /// One node as the client sees it.
    private struct NodeHealth {
        let permits: ConnectionPermits
        let connections: NodeConnections
        /// Skipped until then (a refused connection or a timeout).
        var downUntil: ContinuousClock.Instant?
        /// Failures in a row, for the probe's backoff.
        var failures = 0
    }

    /// Answer bodies are read up to this size (a value is at most 1 MiB, escaped in JSON).
    static let maximumResponseBytes = 8 << 20
    /// Refreshes prompted by failures or ring changes are at most this frequent.
    static let minimumRefreshSpacing = Duration.milliseconds(100)

    /// A client of the cluster `config.nodes` belong to. Connects lazily: nothing is sent until the
    /// first call.
    public init(_ config: CacheClientConfig, logger: Logger = Logger(label: "cache-client")) throws(CacheClientError) {
        try config.validate()
        self.config = config
        configuredNodes = config.nodes.compactMap(NodeAddress.init)
        self.logger = logger
        if let tlsSettings = config.tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile = tlsSettings.caFile { configuration.trustRoots = .file(caFile) }
            do {
                tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw .invalidConfiguration("tls: \(error)")
            }
        } else {
            tls = nil
        }
        state = Mutex(State())
    }

    /// Closes every connection and fails calls in flight and to come with `shutDown`.
    public func shutdown() async {
        let (tasks, permits, wasShutDown) = state.withLock { state in
            let wasShutDown = state.isShutDown
            state.isShutDown = true
            let tasks = Array(state.probes.values) + (state.refresh.map { [$0] } ?? [])
            state.probes = [:]
            state.refresh = nil
            return (tasks, Array(state.nodes.values), wasShutDown)
        }
        guard !wasShutDown else { return }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        for node in permits {
            node.permits.close()
            node.connections.close()
        }
    }

    // MARK: Data calls

    /// The value stored under `key`, or nil when there is none.
    public func get(_ key: String, consistency: CacheConsistency? = nil) async throws -> String? {
        let answer = try await call(
            .get, key: key, method: .GET, path: "/get/" + Self.escapePath(key) + query(consistency), body: nil)
        switch answer.status {
        case 200:
            guard case .object(let members) = try? JSONParser.parse(answer.body),
                let value = members.first(where: { $0.name == Array("value".utf8) }),
                case .string(let bytes) = value.value
            else { throw CacheClientError.invalidResponse(node: answer.node, detail: "no value in \(answer.text)") }
            return String(decoding: bytes, as: UTF8.self)
        default:
            return nil
        }
    }

    /// Stores `value` under `key`.
    public func put(
        _ key: String, _ value: String, ttl: CacheTTL = .nodeDefault, consistency: CacheConsistency? = nil
    ) async throws {
        var body = Array(#"{"key":"#.utf8)
        Self.appendJSONString(key, to: &body)
        body.append(contentsOf: #","value":"#.utf8)
        Self.appendJSONString(value, to: &body)
        switch ttl {
        case .nodeDefault: break
        case .never: body.append(contentsOf: #","ttl":0"#.utf8)
        case .seconds(let seconds): body.append(contentsOf: #","ttl":\#(seconds)"#.utf8)
        }
        body.append(UInt8(ascii: "}"))
        _ = try await call(.put, key: key, method: .PUT, path: "/put" + query(consistency), body: body)
    }

    /// Deletes `key`; whether it held a value.
    @discardableResult
    public func delete(_ key: String, consistency: CacheConsistency? = nil) async throws -> Bool {
        let answer = try await call(
            .delete, key: key, method: .DELETE, path: "/delete/" + Self.escapePath(key) + query(consistency), body: nil)
        return answer.status == 200
    }

    /// The values of `keys` that exist. Keys are grouped by first owner and the groups read
    /// concurrently (up to `connectionsPerNode` calls per node at a time); any call's failure fails
    /// the batch.
    public func getMany(
        _ keys: some Sequence<String>, consistency: CacheConsistency? = nil
    ) async throws -> [String:
        String]
    {
        let groups = await groupByOwner(Array(Set(keys)))
        return try await withThrowingTaskGroup(of: [(String, String?)].self) { group in
            for keys in groups {
                group.addTask { try await self.inBatches(keys) { try await self.get($0, consistency: consistency) } }
            }
            var values: [String: String] = [:]
            for try await results in group {
                for case (let key, let value?) in results { values[key] = value }
            }
            return values
        }
    }

    /// Stores every entry, grouped by first owner and sent concurrently as `getMany` reads; any
    /// call's failure fails the batch (entries already stored stay stored).
    public func putMany(
        _ entries: [String: String], ttl: CacheTTL = .nodeDefault, consistency: CacheConsistency? = nil
    ) async throws {
        let groups = await groupByOwner(Array(entries.keys))
        try await withThrowingTaskGroup(of: [(String, Void)].self) { group in
            for keys in groups {
                group.addTask {
                    try await self.inBatches(keys) { key in
                        try await self.put(key, entries[key]!, ttl: ttl, consistency: consistency)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Runs `body` for each key, `connectionsPerNode` at a time.
    private func inBatches<T: Sendable>(
        _ keys: [String], _ body: @escaping @Sendable (String) async throws -> T
    ) async throws -> [(String, T)] {
        let width = config.connectionsPerNode
        return try await withThrowingTaskGroup(of: (String, T).self) { group in
            var results: [(String, T)] = []
            var next = 0
            while next < keys.count || !group.isEmpty {
                while next < keys.count, next - results.count < width {
                    let key = keys[next]
                    next += 1
                    group.addTask { (key, try await body(key)) }
                }
                if let result = try await group.next() { results.append(result) }
            }
            return results
        }
    }

    /// Keys grouped by the node a call for them goes to first.
    private func groupByOwner(_ keys: [String]) async -> [[String]] {
        if topology == nil { await awaitFirstTopology(limit: config.timeout / 2) }
        var groups: [NodeAddress: [String]] = [:]
        for key in keys {
            let first = candidates(for: key).first ?? configuredNodes[0]
            groups[first, default: []].append(key)
        }
        return Array(groups.values)
    }

    // MARK: Node and cluster calls

    /// Node `node`'s `/stats` (any node of the cluster when nil).
    public func stats(node: String? = nil) async throws -> NodeStats {
        let answer = try await call(.stats, node: node, method: .GET, path: "/stats")
        return try decode(NodeStats.self, answer)
    }

    /// Node `node`'s `/health` (any node of the cluster when nil). A node that is not healthy answers
    /// 503 with its status word; that is returned, not thrown.
    public func health(node: String? = nil) async throws -> NodeHealthStatus {
        let answer = try await call(.health, node: node, method: .GET, path: "/health", acceptUnavailable: true)
        return try decode(NodeHealthStatus.self, answer)
    }

    /// The cluster as node `node` sees it (any node when nil).
    public func cluster(node: String? = nil) async throws -> ClusterStatus {
        let answer = try await call(.cluster, node: node, method: .GET, path: "/cluster")
        let status = try decode(ClusterStatus.self, answer)
        install(Topology(status))
        return status
    }

    /// Asks node `node` to leave the cluster for good (it hands its keys to the other members first).
    /// Not retried: the node may have begun.
    public func leave(node: String) async throws {
        _ = try await call(.leave, node: node, method: .POST, path: "/cluster/leave", retries: false)
    }

    /// Asks node `via` (any node when nil) to forget `member`, a dead member that will not return.
    public func forget(_ member: String, via node: String? = nil) async throws {
        _ = try await call(
            .forget, node: node, method: .DELETE, path: "/cluster/members/" + Self.escapePath(member))
    }

    /// What adding and removing members would move (a dry run), as JSON text.
    public func plan(adding: [String] = [], removing: [String] = [], via node: String? = nil) async throws -> String {
        var parameters: [String] = []
        if !adding.isEmpty { parameters.append("add=" + adding.map(Self.escapePath).joined(separator: ",")) }
        if !removing.isEmpty { parameters.append("remove=" + removing.map(Self.escapePath).joined(separator: ",")) }
        let path = "/cluster/plan" + (parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&"))
        return try await call(.plan, node: node, method: .GET, path: path).text
    }

    /// The JSON text node `node` (any when nil) answers `path` with: for tools that print it as is.
    public func rawJSON(_ path: String, node: String? = nil) async throws -> String {
        try await call(.stats, node: node, method: .GET, path: path).text
    }

    private func decode<T: Decodable>(_ type: T.Type, _ answer: Answer) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(answer.body))
        } catch {
            throw CacheClientError.invalidResponse(node: answer.node, detail: "\(error) in \(answer.text.prefix(200))")
        }
    }

    // MARK: Routing

    private var topology: Topology? { state.withLock { $0.topology } }

    /// Where a call for `key` may go, best first: its replicas seen alive (first owner first), the
    /// configured nodes (any node serves any key, and these the application can surely reach), the
    /// other members seen alive, its replicas not seen alive.
    private func candidates(for key: String?) -> [NodeAddress] {
        let (topology, nodes) = state.withLock { ($0.topology, $0.nodes) }
        var ordered: [NodeAddress] = []
        func add(_ node: NodeAddress) { if !ordered.contains(node) { ordered.append(node) } }
        let owners = topology.flatMap { topology in key.map { topology.owners(of: $0) } } ?? []
        for owner in owners where owner.alive { add(owner.address) }
        for node in configuredNodes { add(node) }
        for node in topology?.coordinators ?? [] { add(node) }
        for owner in owners { add(owner.address) }
        // Nodes marked down go last, in the same order.
        let now = ContinuousClock.now
        let up = ordered.filter { nodes[$0]?.downUntil.map { $0 <= now } ?? true }
        return up + ordered.filter { !up.contains($0) }
    }

    /// Installs a newer view of the cluster.
    private func install(_ topology: Topology) {
        let changed = state.withLock { state in
            let changed = state.topology?.version != topology.version
            state.topology = topology
            state.refreshedAt = .now
            return changed
        }
        metrics.refreshed()
        if changed {
            logger.debug(
                "cluster topology changed",
                metadata: [
                    "ring_version": "\(topology.version)", "members": "\(topology.status.members.count)",
                    "answered_by": "\(topology.status.nodeID)",
                ])
        }
    }

    /// Reads `/cluster` from the first node that answers.
    private func refreshTopology() async {
        let (nodes, isShutDown) = state.withLock { state in
            (state.topology?.coordinators ?? [], state.isShutDown)
        }
        guard !isShutDown else { return }
        var tried = nodes
        for node in configuredNodes where !tried.contains(node) { tried.append(node) }
        for node in tried {
            guard !Task.isCancelled else { return }
            do {
                let answer = try await attempt(
                    method: .GET, path: "/cluster", body: nil, on: node,
                    timeout: min(config.timeout, .seconds(1)))
                guard answer.status == 200 else { continue }
                let status = try JSONDecoder().decode(ClusterStatus.self, from: Data(answer.body))
                guard !status.members.isEmpty else { continue }
                install(Topology(status))
                return
            } catch {
                logger.trace("topology refresh: \(node) did not answer", metadata: ["error": "\(error)"])
            }
        }
        logger.debug("topology refresh: no node answered", metadata: ["tried": "\(tried.count)"])
        state.withLock { $0.refreshedAt = .now }
    }

    /// Starts a refresh in the background unless one runs or one finished moments ago.
    private func requestRefresh(force: Bool) {
        _ = startRefresh { last in
            let age = ContinuousClock.now - last
            return age >= (force ? Self.minimumRefreshSpacing : config.topologyRefreshInterval)
        }
    }

    /// Waits for a first view of the cluster (the one refresh in flight, or a new one; concurrent
    /// first calls share it), but at most `limit`: a call whose deadline is near goes to a configured
    /// node instead, which serves any key.
    private func awaitFirstTopology(limit: Duration) async {
        guard startRefresh({ ContinuousClock.now - $0 >= Self.minimumRefreshSpacing }) != nil else { return }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let (installed, running) = state.withLock { ($0.topology != nil, $0.refresh != nil) }
            if installed || !running { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// The refresh in flight, or a new one when none has run yet or `due` says so of the last one.
    private func startRefresh(_ due: (ContinuousClock.Instant) -> Bool) -> Task<Void, Never>? {
        state.withLock { state in
            guard !state.isShutDown else { return nil }
            if let refresh = state.refresh { return refresh }
            if let last = state.refreshedAt, !due(last) { return nil }
            let refresh = Task { [self] in
                await refreshTopology()
                self.state.withLock { $0.refresh = nil }
            }
            state.refresh = refresh
            return refresh
        }
    }

    /// Marks `node` down after a refused connection or a timeout and starts probing it.
    private func markDown(_ node: NodeAddress, because reason: String) {
        let started: Bool = state.withLock { state in
            guard !state.isShutDown else { return false }
            _ = permits(for: node, in: &state)
            var health = state.nodes[node]!
            health.failures += 1
            health.downUntil = .now + config.downPeriod
            state.nodes[node] = health
            guard state.probes[node] == nil else { return false }
            state.probes[node] = Task { [self] in await probe(node) }
            return true
        }
        metrics.nodeMarkedDown()
        if started { logger.debug("node marked down", metadata: ["node": "\(node)", "reason": "\(reason)"]) }
    }

    /// Asks `/health` of a node marked down until it answers, waiting `downPeriod` (doubling, up to
    /// 8×) between asks; then the node is used again.
    private func probe(_ node: NodeAddress) async {
        var wait = config.downPeriod
        while !Task.isCancelled {
            do { try await Task.sleep(for: wait) } catch { return }
            if let answer = try? await attempt(
                method: .GET, path: "/health", body: nil, on: node, timeout: config.connectTimeout * 2),
                answer.status == 200
            {
                state.withLock { state in
                    state.nodes[node]?.downUntil = nil
                    state.nodes[node]?.failures = 0
                    state.probes[node] = nil
                }
                logger.debug("node answers again", metadata: ["node": "\(node)"])
                requestRefresh(force: true)
                return
            }
            state.withLock { $0.nodes[node]?.downUntil = .now + wait * 2 }
            wait = min(wait * 2, config.downPeriod * 8)
        }
    }

    private func permits(for node: NodeAddress, in state: inout State) -> (ConnectionPermits, NodeConnections) {
        if let health = state.nodes[node] { return (health.permits, health.connections) }
        let permits = ConnectionPermits(node: node.description, limit: config.connectionsPerNode)
        let connections = NodeConnections(
            host: node.host, port: node.port, tls: tls, connectTimeout: .nanoseconds(config.connectTimeout.nanoseconds),
            maximumResponseBytes: Self.maximumResponseBytes)
        state.nodes[node] = NodeHealth(permits: permits, connections: connections)
        return (permits, connections)
    }

    // MARK: Calls

    /// A node's answer.
    struct Answer: Sendable {
        var status: Int
        var body: [UInt8]
        var node: String
        var ringVersion: String?
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// What one attempt ended with, when it did not end with an answer to hand back.
    private enum AttemptFailure: Error {
        /// No connection, or it broke: the node is marked down.
        case unreachable(String)
        /// The attempt's share of the deadline passed.
        case timedOut
        /// The cluster answered 503 or 5xx.
        case answered(CacheClientError)
    }

    /// Sends a data call for `key` to its replicas, retrying as the configuration says.
    private func call(
        _ operation: Operation, key: String, method: HTTPMethod, path: String, body: [UInt8]?
    ) async throws -> Answer {
        try await call(operation, key: key, node: nil, method: method, path: path, body: body)
    }

    private func call(
        _ operation: Operation, key: String? = nil, node fixed: String?, method: HTTPMethod, path: String,
        body: [UInt8]? = nil, retries: Bool = true, acceptUnavailable: Bool = false
    ) async throws -> Answer {
        metrics.started(operation)
        let started = ContinuousClock.now
        do {
            let answer = try await perform(
                operation, key: key, node: fixed, method: method, path: path, body: body, retries: retries,
                acceptUnavailable: acceptUnavailable, started: started)
            metrics.finished(operation, nanoseconds: (ContinuousClock.now - started).nanoseconds, failure: nil)
            return answer
        } catch {
            metrics.finished(
                operation, nanoseconds: (ContinuousClock.now - started).nanoseconds, failure: Self.reason(error))
            throw error
        }
    }

    private func perform(
        _ operation: Operation, key: String?, node fixed: String?, method: HTTPMethod, path: String, body: [UInt8]?,
        retries: Bool, acceptUnavailable: Bool, started: ContinuousClock.Instant
    ) async throws -> Answer {
        if state.withLock({ $0.isShutDown }) { throw CacheClientError.shutDown }
        var target: NodeAddress?
        if let fixed {
            guard let address = NodeAddress(fixed) else {
                throw CacheClientError.invalidRequest(status: 0, message: "node \"\(fixed)\" is not host:port")
            }
            target = address
        } else if topology == nil {
            await awaitFirstTopology(limit: config.timeout / 4)
        } else {
            requestRefresh(force: false)
        }
        let deadline = started + config.timeout
        var plan = AttemptPlan(attempts: retries ? config.maximumRetries + 1 : 1)
        var writeTimedOut = false
        while !plan.isExhausted {
            try Task.checkCancellation()
            let node = target ?? plan.node(from: candidates(for: key))
            if plan.made > 0 {
                metrics.retried(operation, failover: node != plan.previous)
                if plan.waits(before: node) { try await backoff(attempt: plan.made, deadline: deadline) }
            }
            if writeTimedOut {
                // The abandoned attempt may still reach its node; the node refuses it past the
                // deadline it was sent with, by a clock up to `maximumClockOffset` behind ours.
                guard deadline - .now > config.maximumClockOffset else {
                    throw CacheClientError.timeout(
                        after: ContinuousClock.now - started, attempts: plan.made, last: plan.lastFailure)
                }
                try await Task.sleep(for: config.maximumClockOffset)
                writeTimedOut = false
            }
            let remaining = deadline - .now
            guard remaining > .zero else { break }
            let budget = plan.budget(remaining: remaining)
            plan.began(node)
            let failure: AttemptPlan.Failure
            do {
                let answer = try await attempt(method: method, path: path, body: body, on: node, timeout: budget)
                if let version = answer.ringVersion, let known = topology?.version, version != known {
                    requestRefresh(force: true)
                }
                switch answer.status {
                case 200..<300:
                    return answer
                case 404 where operation == .get || operation == .delete:
                    // The key is absent: an answer, not an error.
                    return answer
                case 503 where acceptUnavailable:
                    return answer
                case 408:
                    // The node did not make the write: the deadline this client sent had passed by
                    // its clock (behind or ahead of ours). Another node may take it, with no clock wait.
                    failure = .refused(.server(status: 408, message: Self.message(answer), node: answer.node))
                case 400..<500:
                    throw CacheClientError.invalidRequest(status: answer.status, message: Self.message(answer))
                default:
                    failure = .refused(Self.serverError(answer))
                }
            } catch let attemptFailure as AttemptFailure {
                switch attemptFailure {
                case .unreachable(let reason):
                    failure = .unreachable(reason)
                    markDown(node, because: reason)
                    requestRefresh(force: true)
                case .timedOut:
                    failure = .timedOut(budget: budget)
                    writeTimedOut = method == .PUT || method == .DELETE
                    markDown(node, because: "timeout")
                    requestRefresh(force: true)
                case .answered(let error):
                    failure = .refused(error)
                }
            } catch let error as CacheClientError {
                guard case .poolExhausted = error else { throw error }
                failure = .poolExhausted(error)
            }
            plan.failed(node, failure)
            logger.trace(
                "attempt failed",
                metadata: [
                    "operation": "\(operation)", "node": "\(node)", "attempt": "\(plan.made)",
                    "failure": "\(failure)",
                ])
        }
        if ContinuousClock.now >= deadline {
            throw CacheClientError.timeout(
                after: ContinuousClock.now - started, attempts: plan.made, last: plan.lastFailure)
        }
        if let error = plan.lastError { throw error }
        throw CacheClientError.noReachableNode(tried: plan.tried)
    }

    /// Sleeps a full-jitter backoff before retry `attempt` (1 for the first retry), within `deadline`.
    private func backoff(attempt: Int, deadline: ContinuousClock.Instant) async throws {
        let ceiling = min(config.backoffCap, config.backoffBase * (1 << min(attempt - 1, 20)))
        let nanoseconds = ceiling.nanoseconds
        guard nanoseconds > 0 else { return }
        let wait = Duration.nanoseconds(Int64.random(in: 0...nanoseconds))
        let remaining = deadline - .now
        try await Task.sleep(for: min(wait, max(.zero, remaining)))
    }

    /// One request to one node, holding one of its connection permits.
    private func attempt(
        method: HTTPMethod, path: String, body: [UInt8]?, on node: NodeAddress, timeout: Duration
    ) async throws -> Answer {
        let (nodePermits, connections) = try state.withLock { state throws(CacheClientError) in
            if state.isShutDown { throw .shutDown }
            return self.permits(for: node, in: &state)
        }
        let waitStarted = ContinuousClock.now
        if try await nodePermits.acquire(timeout: min(config.poolWaitTimeout, timeout)) { metrics.waitedForPool() }
        defer { nodePermits.release() }
        let remaining = timeout - (ContinuousClock.now - waitStarted)
        guard remaining > .zero else { throw AttemptFailure.timedOut }
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "host", value: node.description)
        if let token = config.token { headers.add(name: "authorization", value: "Bearer " + token) }
        if method == .PUT || method == .DELETE {
            // When this client stops waiting, by its wall clock: the node makes no write past it.
            let milliseconds = Int64(Date().timeIntervalSince1970 * 1000) + remaining.nanoseconds / 1_000_000
            headers.add(name: "x-cache-deadline", value: String(milliseconds))
        }
        var payload: ByteBuffer?
        if let body {
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.count))
            payload = ByteBuffer(bytes: body)
        } else if method == .PUT || method == .POST {
            headers.add(name: "content-length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        do {
            let response = try await connections.execute(
                head, body: payload, deadline: .now() + .nanoseconds(remaining.nanoseconds))
            return Answer(
                status: response.status, body: response.body, node: node.description,
                ringVersion: response.ringVersion)
        } catch let failure as NodeConnections.Failure {
            if Task.isCancelled { throw CancellationError() }
            switch failure {
            case .timedOut: throw AttemptFailure.timedOut
            case .closed: throw CacheClientError.shutDown
            case .unreachable(let reason): throw AttemptFailure.unreachable(reason)
            case .tooLarge(let limit):
                throw CacheClientError.invalidResponse(
                    node: node.description, detail: "an answer longer than \(limit) bytes")
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw AttemptFailure.unreachable(NodeConnections.describe(error))
        }
    }

    // MARK: Helpers

    private func query(_ consistency: CacheConsistency?) -> String {
        guard let level = consistency ?? config.consistency else { return "" }
        return "?consistency=" + level.rawValue
    }

    /// The `error` member of an error answer, or its text.
    private static func message(_ answer: Answer) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
            let message = object["error"] as? String
        {
            return message
        }
        return answer.text
    }

    private static func serverError(_ answer: Answer) -> CacheClientError {
        if answer.status == 503,
            let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
            let level = object["consistency"] as? String, let answered = object["answered"] as? Int,
            let required = object["required"] as? Int
        {
            return .unavailable(level: level, answered: answered, required: required, node: answer.node)
        }
        return .server(status: answer.status, message: message(answer), node: answer.node)
    }

    private static func reason(_ error: any Error) -> ClientMetrics.FailureReason {
        switch error {
        case is CancellationError: return .cancelled
        case let error as CacheClientError:
            switch error {
            case .timeout: return .timeout
            case .unavailable: return .unavailable
            case .invalidRequest, .invalidConfiguration: return .invalidRequest
            case .server: return .server
            case .noReachableNode: return .unreachable
            case .poolExhausted: return .poolExhausted
            case .invalidResponse: return .invalidResponse
            case .shutDown: return .shutDown
            }
        default: return .unreachable
        }
    }

    /// A key as one path segment: everything but unreserved characters percent-encoded.
    static func escapePath(_ key: String) -> String {
        // Most keys are letters, digits and `-._~:`: nothing to encode, and no Foundation search.
        let plain = key.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: ":"):
                return true
            default:
                return false
            }
        }
        if plain && !key.isEmpty { return key }
        return key.addingPercentEncoding(withAllowedCharacters: .urlPathSegmentAllowed) ?? key
    }

    /// Appends `text` as a JSON string literal.
    static func appendJSONString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension CharacterSet {
    /// RFC 3986's unreserved characters and `:` (a path character, common in keys): what a path
    /// segment keeps as is.
    static let urlPathSegmentAllowed = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:")
}
