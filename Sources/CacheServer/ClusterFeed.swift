import AsyncHTTPClient
import CacheCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The cluster page's live feed (`GET /ui/events`, server-sent events): while at least one page is
/// open, once a tick this node reads its own view of the members and the ring and every live
/// member's `/stats`, and sends each page what changed. No page open, no work: the first page
/// starts the ticks, the last one to close stops them (the charts' history is kept meanwhile).
///
/// The documents are `ClusterPageModel`'s; this type owns the ticks, the HTTP client and the pages.
final class ClusterFeed: Sendable {
    /// Pages that may follow one node at once (one more is answered 503).
    static let maximumSubscribers = 16
    /// Time between ticks.
    static let tickInterval = Duration.seconds(1)
    /// How long a member's `/stats` may take before the tick goes on without it.
    static let statsTimeout = TimeAmount.milliseconds(900)

    /// An open page: how to send it an event, and whether its token still admits it.
    struct Subscriber: Sendable {
        /// Sends one event; `false` once the page is gone or too far behind to follow.
        var send: @Sendable ([UInt8]) -> Void
        /// The page's `Authorization` header, forwarded to the members' `/stats`.
        var authorization: String?
        /// Whether the page's token still admits it (tokens are reread on SIGHUP).
        var admitted: @Sendable () -> Bool
        /// Ends the page's stream (its token no longer admits it).
        var close: @Sendable () -> Void
        var needsSnapshot = true
    }

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscriber = 1
        var running = false
        var model = ClusterPageModel()
        var lastTick: [String: Any]?
    }

    private let state = Mutex(State())

    /// Adds a page; `nil` when `maximumSubscribers` are open. It gets a snapshot within a tick.
    func subscribe(_ subscriber: Subscriber, node: CacheNode) -> Int? {
        let (id, start) = state.withLock { state -> (Int?, Bool) in
            guard state.subscribers.count < Self.maximumSubscribers else { return (nil, false) }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = subscriber
            let start = !state.running
            state.running = true
            return (id, start)
        }
        if start { Task { await self.run(node: node) } }
        return id
    }

    func unsubscribe(_ id: Int) {
        state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    private func run(node: CacheNode) async {
        let client = Self.statsClient(node.configuration)
        defer { _ = client.shutdown() }
        var eventCursor: UInt64 = 0
        while true {
            let authorization = state.withLock { state in
                state.subscribers.values.first(where: { $0.admitted() })?.authorization
            }
            await tick(node: node, client: client, authorization: authorization, eventCursor: &eventCursor)
            let more = state.withLock { state in
                if state.subscribers.isEmpty { state.running = false }
                return state.running
            }
            guard more else { return }
            try? await Task.sleep(for: Self.tickInterval)
        }
    }

    private func tick(node: CacheNode, client: HTTPClient, authorization: String?, eventCursor: inout UInt64) async {
        guard let view = try? await Self.localView(node) else { return }
        let members = view.members.filter { $0.status == "alive" || $0.status == "suspect" }
        let gathered = await Self.gatherStats(
            node: node, members: members.map { ($0.id, $0.clientAddress) }, client: client,
            authorization: authorization)
        let now = node.clock.now().nanosecondsSinceEpoch / 1_000_000
        let newEvents = node.driver.events.events(after: eventCursor)
        if let last = newEvents.last { eventCursor = last.sequence }
        let allEvents = node.driver.events.events(after: 0)
        let interval = Int(Self.tickInterval.nanoseconds / 1_000_000)
        let deliveries = state.withLock { state -> [(Subscriber, [UInt8], close: Bool)] in
            let ringEvent = state.model.observe(view, unixMilliseconds: now)
            var samples: [String: ClusterPageModel.Sample] = [:]
            var failures: [String: String] = [:]
            for (id, result) in gathered {
                switch result {
                case .success(let stats):
                    guard let figures = ClusterPageModel.Figures(stats: stats) else {
                        failures[id] = "its /stats is not one this page reads"
                        continue
                    }
                    if let sample = state.model.record(id, figures, unixMilliseconds: now) { samples[id] = sample }
                case .failure(let error):
                    failures[id] = "\(error)"
                }
            }
            let tick = state.model.tickDocument(
                view, samples: samples, failures: failures,
                events: Self.merged(newEvents, ringEvent.map { [$0] } ?? []),
                unixMilliseconds: now, intervalMilliseconds: interval)
            state.lastTick = tick
            let snapshot = ClusterPageModel.serverSentEvent(
                "snapshot",
                state.model.snapshotDocument(tick: tick, events: Self.merged(allEvents, state.model.ringEvents)))
            let tickEvent = ClusterPageModel.serverSentEvent("tick", tick)
            var deliveries: [(Subscriber, [UInt8], close: Bool)] = []
            for id in state.subscribers.keys.sorted() {
                guard var subscriber = state.subscribers[id] else { continue }
                guard subscriber.admitted() else {
                    state.subscribers[id] = nil
                    let refusal = ClusterPageModel.serverSentEvent(
                        "refused", ["error": "the page's token no longer admits it"])
                    deliveries.append((subscriber, refusal, true))
                    continue
                }
                deliveries.append((subscriber, subscriber.needsSnapshot ? snapshot : tickEvent, false))
                subscriber.needsSnapshot = false
                state.subscribers[id] = subscriber
            }
            return deliveries
        }
        for (subscriber, bytes, close) in deliveries {
            subscriber.send(bytes)
            if close { subscriber.close() }
        }
    }

    /// The node's events and the ring's, in time order.
    private static func merged(
        _ events: [ClusterEventLog.Event], _ ring: [ClusterEventLog.Event]
    ) -> [ClusterEventLog.Event] {
        (events + ring).sorted { $0.unixMilliseconds < $1.unixMilliseconds }
    }

    /// This node's view of the members and the ring, read on its loop.
    private static func localView(_ node: CacheNode) async throws -> ClusterPageModel.LocalView? {
        let factor = node.configuration.replicationFactor
        let now = node.clock.now()
        return try await node.driver.inspect(from: node.driver.loop) { state -> ClusterPageModel.LocalView? in
            guard let cluster = state.node else { return nil }
            let ring = cluster.ring
            let shares = ring.primaryShares
            let members = cluster.membership.view.map { update in
                var contact: Double?
                if update.id == cluster.me {
                    contact = 0
                } else if let last = cluster.membership.lastContact(with: update.id) {
                    contact = (Double(last.nanoseconds(to: now)) / 1e8).rounded() / 10
                }
                return ClusterPageModel.Member(
                    id: update.id.rawValue, address: update.address, clientAddress: update.clientAddress,
                    status: "\(update.status)", incarnation: update.incarnation, lastContactSeconds: contact,
                    ringShare: ((shares[update.id] ?? 0) * 10_000).rounded() / 10_000)
            }
            let owners = ring.members
            let index = Dictionary(uniqueKeysWithValues: owners.enumerated().map { ($1, $0) })
            let sectors = (0..<ClusterPageModel.ringSectors).map { sector -> Int in
                // The middle of each equal arc of the 64-bit key space.
                let width = UInt64.max / UInt64(ClusterPageModel.ringSectors)
                let position = UInt64(sector) * width + width / 2
                return ring.preferenceList(forPosition: position, count: 1).first.flatMap { index[$0] } ?? -1
            }
            var leaving: Int?
            if case .leaving(let keys) = cluster.leaveState { leaving = keys }
            return ClusterPageModel.LocalView(
                me: cluster.me.rawValue, members: members, ringVersion: cluster.ringVersion,
                ringMembers: owners.map(\.rawValue), virtualNodes: ring.virtualNodes, replicationFactor: factor,
                sectors: sectors, leavingKeys: leaving)
        }.get()
    }

    // MARK: Gathering members' figures

    /// A client for the members' `/stats`: HTTPS when this node serves it (trusting the chain in
    /// this node's own `TLS_CERT_FILE`: members are expected to share a certificate authority, and
    /// are reached by address, so the name is not checked), plain HTTP otherwise.
    static func statsClient(_ configuration: NodeConfiguration) -> HTTPClient {
        guard let tls = configuration.tls else { return HTTPClient(eventLoopGroupProvider: .singleton) }
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv12
        if let chain = try? NIOSSLCertificate.fromPEMFile(tls.certificatePath) {
            client.trustRoots = .certificates(chain)
        }
        client.certificateVerification = .noHostnameVerification
        return HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: client))
    }

    /// Every member's `/stats`, parsed: this node's read from its own loop, the others' over HTTP
    /// with `authorization` forwarded (tokens are the cluster's, not one node's).
    static func gatherStats(
        node: CacheNode, members: [(id: String, address: String)], client: HTTPClient, authorization: String?
    ) async -> [(String, Result<[String: Any], any Error>)] {
        let scheme = node.configuration.tls == nil ? "http" : "https"
        let me = node.nodeID
        let loop = node.driver.loop
        return await withTaskGroup(of: (String, Result<[UInt8], any Error>).self) { group in
            for (id, address) in members {
                group.addTask {
                    do {
                        if id == me { return (id, .success(try await node.statsDocument(from: loop).get())) }
                        guard !address.isEmpty else {
                            throw GatherProblem(description: "its client address is not known")
                        }
                        var request = HTTPClientRequest(url: "\(scheme)://\(address)/stats")
                        request.method = .GET
                        if let authorization { request.headers.add(name: "authorization", value: authorization) }
                        let response = try await client.execute(request, timeout: statsTimeout)
                        let body = try await response.body.collect(upTo: 1 << 20)
                        guard response.status == .ok else {
                            throw GatherProblem(description: "its /stats answered \(response.status.code)")
                        }
                        return (id, .success(Array(body.readableBytesView)))
                    } catch {
                        return (id, .failure(error))
                    }
                }
            }
            var results: [(String, Result<[String: Any], any Error>)] = []
            for await (id, result) in group {
                results.append(
                    (
                        id,
                        result.flatMap { bytes in
                            Result {
                                guard
                                    let document = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
                                else { throw GatherProblem(description: "its /stats is not a JSON object") }
                                return document
                            }
                        }
                    ))
            }
            return results.sorted { $0.0 < $1.0 }
        }
    }

    struct GatherProblem: Error, CustomStringConvertible {
        var description: String
    }
}
