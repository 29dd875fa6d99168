import CacheCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// What waits on the node's loop for the answer to a client's request: a connection, usually.
protocol ClientReplyReceiver: AnyObject {
    func received(_ reply: ClusterNode.ClientReply)
}

/// A receiver made of a closure (requests handed in from another loop).
private final class ClosureReceiver: ClientReplyReceiver {
    let completion: (ClusterNode.ClientReply) -> Void
    init(_ completion: @escaping (ClusterNode.ClientReply) -> Void) { self.completion = completion }
    func received(_ reply: ClusterNode.ClientReply) { completion(reply) }
}

/// Who a node is, once its sockets are bound: its name and where peers and clients reach it.
struct NodeIdentity: Sendable {
    var nodeID: String
    var peerAddress: String
    var clientAddress: String
}

/// The one owner of a node's state machine (`ClusterNode`): every input enters on `loop` (client
/// requests, peer messages, timers, the log's completions, the allocator's figure) and every effect
/// is carried out from there. No lock guards the node: it is confined to its loop, as a Redis node is
/// to its thread. Requests from connections on other loops hop to it and back.
final class NodeDriver: Sendable {
    /// The loop the node lives on.
    let loop: any EventLoop
    private let configuration: NodeConfiguration
    private let clock: NodeClock
    private let state: NIOLoopBoundBox<DriverState>
    private let logger: Logger
    /// The ring's version as of the node's last membership change, for any loop to read (data
    /// answers carry it, so that clients notice a changed ring).
    let ring: RingVersionCell
    /// The cluster's secrets (`CLUSTER_SECRET_FILE`), when peers authenticate; replaced on SIGHUP.
    let peerKeyring: PeerKeyringBox?
    /// Addresses whose refused peer connections were logged.
    let peerRefusals = PeerRefusalLog()
    /// The membership changes the node reported, for the cluster page.
    let events = ClusterEventLog(capacity: 200)

    init(
        configuration: NodeConfiguration, clock: NodeClock, metrics: NodeMetrics, logger: Logger, loop: any EventLoop,
        seed: UInt64
    ) {
        self.loop = loop
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        let ring = RingVersionCell()
        self.ring = ring
        self.peerKeyring = configuration.peerKeyring.map { keyring in
            let path = configuration.clusterSecretFile ?? ""
            return PeerKeyringBox(keyring, path: path) { try PeerKeyring(contentsOf: path) }
        }
        // Made here, used only on `loop` from now on.
        self.state = NIOLoopBoundBox.makeBoxSendingValue(
            DriverState(
                configuration: configuration, clock: clock, metrics: metrics, logger: logger, loop: loop, seed: seed,
                ring: ring, events: events),
            as: DriverState.self, eventLoop: loop)
    }

    /// Recovers the store from `WAL_DIR` (if set), builds and starts the node as `identity`, and
    /// returns once it may serve: after a migration of a directory written by an earlier release, once
    /// that is durable.
    func start(as identity: NodeIdentity) async throws -> Recovery.Outcome? {
        let configuration = self.configuration
        var recovered: (Recovery.Outcome, LogDirectory)?
        if let path = configuration.walDirectory {
            let now = clock.now()
            let logger = self.logger
            recovered = try await NIOThreadPool.singleton.runIfActive {
                try Self.recover(
                    path: path, configuration: configuration, me: NodeID(identity.nodeID), now: now, logger: logger)
            }
        }
        let started = try await loop.submit { [recovered] in
            try self.state.value.start(as: identity, recovered: recovered, driver: self)
        }.get()
        try await started.get()
        return recovered?.0
    }

    /// Reads the log directory and repairs what recovery asks; blocking file work, off the loop.
    private static func recover(
        path: String, configuration: NodeConfiguration, me: NodeID, now: Instant, logger: Logger
    ) throws -> (Recovery.Outcome, LogDirectory) {
        let directory = try LogDirectory(path: path)
        let listing = try directory.listing()
        logger.debug(
            "recovery: reading the log directory",
            metadata: [
                "wal_dir": "\(path)", "snapshots": .number(listing.snapshots.count),
                "segments": .number(listing.segments.count),
            ])
        let snapshots = try listing.snapshots.map {
            Recovery.SnapshotFile(sequence: $0, bytes: try directory.read(directory.snapshotName($0)))
        }
        let segments = try listing.segments.map {
            Recovery.SegmentFile(firstSequence: $0, bytes: try directory.read(directory.segmentName($0)))
        }
        let outcome = Recovery.recover(
            snapshots: snapshots, segments: segments, limits: configuration.storeLimits,
            seed: .random(in: .min ... .max),
            me: me, now: now, maximumClockOffset: configuration.maximumClockOffset)
        for repair in outcome.repairs {
            logger.notice("recovery: repairing the log directory", metadata: ["repair": "\(repair)"])
            switch repair {
            case .truncateSegment(let first, let length):
                try directory.truncate(directory.segmentName(first), to: length)
            case .quarantineSegment(let first):
                try directory.rename(directory.segmentName(first), to: directory.segmentName(first) + ".corrupt")
            case .quarantineSnapshot(let sequence):
                try directory.rename(
                    directory.snapshotName(sequence), to: directory.snapshotName(sequence) + ".corrupt")
            case .deleteSegment(let first):
                try directory.remove(directory.segmentName(first))
            }
        }
        try directory.sync()
        return (outcome, directory)
    }

    /// Hands a client's request to the node; `completion` runs on `eventLoop` (the caller's) with the
    /// answer, inline when the caller is on the node's loop and the answer is ready at once.
    func submit(
        _ operation: ClusterNode.ClientOperation, deadline: Instant? = nil, from eventLoop: any EventLoop,
        completion: NIOLoopBound<(ClusterNode.ClientReply) -> Void>
    ) {
        if eventLoop === loop, loop.inEventLoop {
            state.value.submit(operation, deadline: deadline, completion: completion.value)
            return
        }
        // Across loops, requests and answers travel in batches: one task on the node's loop for
        // every request that arrived from `eventLoop` since the last one ran, and one task back for
        // the answers made meanwhile (docs/scaling.md: a task per request each way cost more CPU
        // than the engine's own work on the request).
        let crossing = crossing(for: eventLoop)
        guard crossing.enqueue(LoopCrossing.Request(operation: operation, deadline: deadline, completion: completion))
        else { return }
        loop.execute { self.takeRequests(from: crossing) }
    }

    /// The requests `crossing` holds, handed to the node (on its loop); each answer goes back
    /// through the crossing.
    private func takeRequests(from crossing: LoopCrossing) {
        for request in crossing.takeRequests() {
            state.value.submit(request.operation, deadline: request.deadline) { reply in
                guard crossing.enqueue(reply, for: request.completion) else { return }
                crossing.origin.execute { crossing.deliverReplies() }
            }
        }
    }

    private let crossings = Mutex<[ObjectIdentifier: LoopCrossing]>([:])

    /// The crossing between `eventLoop` and the node's loop, made on first use.
    private func crossing(for eventLoop: any EventLoop) -> LoopCrossing {
        crossings.withLock { crossings in
            let key = ObjectIdentifier(eventLoop)
            if let crossing = crossings[key] { return crossing }
            let crossing = LoopCrossing(origin: eventLoop)
            crossings[key] = crossing
            return crossing
        }
    }

    /// What a request handed in on the node's own loop became.
    enum Submitted {
        /// The answer was ready at once (a key whose only replica is this node, say).
        case answered(ClusterNode.ClientReply)
        /// The answer comes later: wait for this request number with `whenAnswered`.
        case pending(UInt64)
    }

    /// Hands a client's request to the node from the node's own loop, without a closure or a hop:
    /// most answers of a node alone are ready within the same step.
    func submitOnLoop(_ operation: ClusterNode.ClientOperation, deadline: Instant? = nil) -> Submitted {
        state.value.submitInline(operation, deadline: deadline)
    }

    /// Hands `receiver` the answer to a request `submitOnLoop` left pending. On the node's loop.
    func whenAnswered(_ request: UInt64, _ receiver: ClientReplyReceiver) {
        state.value.whenAnswered(request, receiver)
    }

    /// Hands a peer's message to the node (from a peer connection on any loop).
    func deliver(_ message: PeerMessage) {
        if loop.inEventLoop {
            state.value.input(.peer(message))
        } else {
            loop.execute { self.state.value.input(.peer(message)) }
        }
    }

    /// Runs `body` on the node's loop with its state, and hands the result back on `eventLoop`.
    func inspect<T: Sendable>(
        from eventLoop: any EventLoop, _ body: @escaping @Sendable (DriverState) -> T
    ) -> EventLoopFuture<T> {
        if eventLoop === loop, loop.inEventLoop { return eventLoop.makeSucceededFuture(body(state.value)) }
        return loop.submit { body(self.state.value) }.hop(to: eventLoop)
    }

    /// Runs `body` on the node's loop with the node itself, carries out the effects it returns, and
    /// hands its answer back on `eventLoop` (administrative requests: leave, forget).
    func withNode<T: Sendable>(
        from eventLoop: any EventLoop,
        _ body: @escaping @Sendable (inout ClusterNode, Instant) -> ([ClusterNode.Effect], T)
    ) -> EventLoopFuture<T> {
        loop.submit { self.state.value.withNode(body) }.hop(to: eventLoop)
    }

    /// Sets what happens when the node asked to leave is done.
    func setLeaveHandler(_ handler: @escaping @Sendable () -> Void) async throws {
        try await loop.submit { self.state.value.onLeaveCompleted = handler }.get()
    }

    /// Stops timers, syncs and closes the log.
    func shutdown() async {
        let threads = (try? await loop.submit { self.state.value.stop() }.get()) ?? []
        for thread in threads { try? await thread.shutdownGracefully() }
    }
}

/// Requests on their way from one connection loop (`origin`) to the node's loop, and their
/// answers on their way back. Each direction holds what arrived since its last task ran and asks
/// for a task only when it was empty: under load one task carries many requests, so the cost of
/// crossing (a task, a wake-up of the other thread) is paid per batch, not per request. Bounded by
/// what the connections hand in: an HTTP connection has one request in flight, a Redis-protocol one
/// at most its pipeline's bound, and the number of connections is limited.
final class LoopCrossing: Sendable {
    struct Request: Sendable {
        var operation: ClusterNode.ClientOperation
        var deadline: Instant?
        var completion: NIOLoopBound<(ClusterNode.ClientReply) -> Void>
    }
    typealias Reply = (completion: NIOLoopBound<(ClusterNode.ClientReply) -> Void>, reply: ClusterNode.ClientReply)

    let origin: any EventLoop
    private let requests = Mutex(Batch<Request>())
    private let replies = Mutex(Batch<Reply>())

    init(origin: any EventLoop) {
        self.origin = origin
    }

    /// Adds a request; `true` when the caller must schedule the task that takes them.
    func enqueue(_ request: Request) -> Bool {
        requests.withLock { $0.append(request) }
    }

    /// Every request waiting (the task taking them runs now).
    func takeRequests() -> [Request] {
        requests.withLock { $0.takeAll() }
    }

    /// Adds an answer; `true` when the caller must schedule `deliverReplies` on `origin`.
    func enqueue(
        _ reply: ClusterNode.ClientReply, for completion: NIOLoopBound<(ClusterNode.ClientReply) -> Void>
    )
        -> Bool
    {
        replies.withLock { $0.append((completion, reply)) }
    }

    /// Hands every waiting answer to its connection, in the order they were made. On `origin`.
    func deliverReplies() {
        for (completion, reply) in replies.withLock({ $0.takeAll() }) { completion.value(reply) }
    }

    /// One direction's items since its task last ran, and whether that task is scheduled.
    private struct Batch<Item> {
        private var items: [Item] = []
        private var scheduled = false

        /// Adds `item`; `true` when nothing was waiting, so the task that takes them must be
        /// scheduled.
        mutating func append(_ item: Item) -> Bool {
            items.append(item)
            defer { scheduled = true }
            return !scheduled
        }

        /// Everything waiting, in order; the next `append` schedules a task again.
        mutating func takeAll() -> [Item] {
            defer {
                items.removeAll(keepingCapacity: true)
                scheduled = false
            }
            return items
        }
    }
}

/// The driver's runtime, held by reference (`DriverState.runtime`).
private final class RuntimeCell {
    var value: DriverState.Runtime

    init(_ value: DriverState.Runtime) {
        self.value = value
    }
}

/// The node's ring version, written on the node's loop and read from any.
final class RingVersionCell: Sendable {
    private let value = Atomic<UInt64>(0)

    var version: UInt64 { value.load(ordering: .relaxed) }

    func store(_ version: UInt64) { value.store(version, ordering: .relaxed) }
}

/// The node's timer on its event loop.
struct LoopTimer: NodeTimer {
    let loop: any EventLoop
    let clock: NodeClock
    /// Hands `.timer` to the node (outside any step: a scheduled task runs on its own turn).
    let fire: () -> Void
    private var scheduled: Scheduled<Void>?

    init(loop: any EventLoop, clock: NodeClock, fire: @escaping () -> Void) {
        self.loop = loop
        self.clock = clock
        self.fire = fire
    }

    mutating func set(_ deadline: Instant) {
        scheduled?.cancel()
        let wait = clock.now().nanoseconds(to: deadline)
        scheduled = loop.assumeIsolated().scheduleTask(in: .nanoseconds(max(0, wait)), fire)
    }

    mutating func cancel() {
        scheduled?.cancel()
        scheduled = nil
    }
}

/// What a step of the node told the driver: replies to hand out, and the events it logs. Replies
/// wait until the step is over, because a connection given its answer may hand in its next request.
struct DriverHost: NodeHost {
    let logger: Logger
    let maximumClockOffset: Duration
    let events: ClusterEventLog
    let clock: NodeClock
    private(set) var replies: [ClusterNode.ClientReply] = []
    private(set) var leaveCompleted = false

    init(logger: Logger, maximumClockOffset: Duration, events: ClusterEventLog, clock: NodeClock) {
        self.logger = logger
        self.maximumClockOffset = maximumClockOffset
        self.events = events
        self.clock = clock
    }

    private func record(_ member: String, _ what: String) {
        events.record(member: member, what: what, unixMilliseconds: clock.now().nanosecondsSinceEpoch / 1_000_000)
    }

    mutating func reply(_ reply: ClusterNode.ClientReply) { replies.append(reply) }

    mutating func observe(_ event: ClusterNode.Effect) {
        switch event {
        case .memberStatusChanged(let member, let status):
            logger.info("member status changed", metadata: ["member": "\(member)", "status": "\(status)"])
            record(member.rawValue, "\(status)")
        case .clockAheadChanged(let ahead):
            record("this node", ahead ? "clock ahead: writes refused" : "clock back within the offset")
            if ahead {
                logger.error(
                    "this node's clock runs ahead of most members' by more than the maximum offset: writes refused",
                    metadata: ["max_clock_offset_ms": .number(Int(maximumClockOffset.nanoseconds / 1_000_000))])
            } else {
                logger.notice("this node's clock is back within the maximum offset of its members'")
            }
        case .leaveCompleted:
            logger.notice("left the cluster: every key this node held is with its owners")
            record("this node", "left the cluster")
            leaveCompleted = true
        default:
            break
        }
    }

    /// The replies and the leave of the step just done, handed over once.
    mutating func takeOutcome() -> (replies: [ClusterNode.ClientReply], leaveCompleted: Bool) {
        defer {
            replies.removeAll(keepingCapacity: true)
            leaveCompleted = false
        }
        return (replies, leaveCompleted)
    }
}

/// What the driver holds on the node's loop.
final class DriverState {
    typealias Runtime = NodeRuntime<TCPPeerTransport, LogFiles?, LoopTimer, DriverHost>

    let configuration: NodeConfiguration
    let clock: NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    let loop: any EventLoop
    let seed: UInt64
    let ring: RingVersionCell
    let events: ClusterEventLog
    /// The node and the parts that carry out its effects, once started. Behind a reference: a check
    /// of the optional struct itself (`runtime != nil`, `runtime!.part`) copied the whole runtime,
    /// the node's state included (a retain and a release of each of its parts), twice a request.
    private var runtime: RuntimeCell?
    /// The node, once started (a copy: read what you need and let it go).
    var node: ClusterNode? { runtime?.value.node }
    private(set) var files: LogFiles?
    private(set) var recovery: Recovery.Report?
    private(set) var transport: TCPPeerTransport?
    /// Requests handed to the node and not answered yet: no more than the node itself may hold
    /// (coordinations and answers waiting for the log).
    private var pending: BoundedTable<UInt64, ClientReplyReceiver>
    private var nextRequest: UInt64 = 1
    /// The request being handed in by `submitInline`, and its answer if the step made one.
    private var inlineRequest: UInt64?
    private var inlineReply: ClusterNode.ClientReply?
    /// Inputs that arrived while the node was in a step (a part reporting at once), handed in after it.
    private var stepping = false
    private var arrived: [ClusterNode.Input] = []
    private var memoryReports: Scheduled<Void>?
    /// Completed once a migration's snapshot is durable (or at once when there is none).
    private var ready: EventLoopPromise<Void>?

    /// How often the allocator's figure is handed to the node (the memory limit follows it).
    static let memoryReportInterval = TimeAmount.milliseconds(100)

    init(
        configuration: NodeConfiguration, clock: NodeClock, metrics: NodeMetrics, logger: Logger, loop: any EventLoop,
        seed: UInt64, ring: RingVersionCell, events: ClusterEventLog
    ) {
        self.configuration = configuration
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.loop = loop
        self.seed = seed
        self.ring = ring
        self.events = events
        let cluster = configuration.clusterConfiguration
        self.pending = BoundedTable(capacity: cluster.maximumCoordinations + cluster.maximumAwaitingDurability)
    }

    /// The name, addresses and seeds the node started with.
    private(set) var identity: NodeIdentity?
    /// Told once the node asked to leave has handed everything off.
    var onLeaveCompleted: (() -> Void)?

    /// Builds the node from what recovery found and starts it. The future completes when it may serve.
    func start(
        as identity: NodeIdentity, recovered: (Recovery.Outcome, LogDirectory)?, driver: NodeDriver
    ) throws -> EventLoopFuture<Void> {
        let now = clock.now()
        self.identity = identity
        let transport = TCPPeerTransport(
            loop: loop, driver: driver, metrics: metrics, logger: logger, keyring: driver.peerKeyring,
            refusals: driver.peerRefusals
        ) { [unowned self] input in self.input(input) }
        self.transport = transport
        if let (outcome, directory) = recovered {
            files = try LogFiles(
                directory: directory, firstSequence: outcome.report.lastSequence + 1, loop: loop, logger: logger,
                metrics: metrics
            ) { [unowned self] input in self.input(input) }
            recovery = outcome.report
        }
        let node = ClusterNode(
            me: NodeID(identity.nodeID), address: identity.peerAddress, clientAddress: identity.clientAddress,
            configuration: configuration.clusterConfiguration, seed: seed, recovered: recovered?.0,
            logPolicy: recovered == nil ? nil : configuration.syncPolicy, now: now)
        let ready = loop.makePromise(of: Void.self)
        if node.isMigrating {
            self.ready = ready
            logger.notice(
                "migrating a data directory written by an earlier release",
                metadata: ["records": .number(recovered?.0.report.legacyRecords ?? 0)])
        } else {
            ready.succeed(())
        }
        let timer = LoopTimer(loop: loop, clock: clock) { [unowned self] in self.input(.timer) }
        runtime = RuntimeCell(
            Runtime(
                node: node, links: transport, log: files, timer: timer,
                host: DriverHost(
                    logger: logger, maximumClockOffset: configuration.maximumClockOffset, events: events, clock: clock)
            ))
        step { $0.start(seeds: configuration.seeds.map(\.description), now: now) }
        scheduleMemoryReport()
        return ready.futureResult
    }

    /// Stops timers and closes the log; returns the log's threads, to be stopped off the loop.
    func stop() -> [NIOThreadPool] {
        transport?.close()
        transport = nil
        runtime?.value.timer.cancel()
        memoryReports?.cancel()
        memoryReports = nil
        runtime = nil
        guard let files else { return [] }
        files.close()
        return files.threads
    }

    // MARK: Inputs

    func submit(
        _ operation: ClusterNode.ClientOperation, deadline: Instant?,
        completion: @escaping (ClusterNode.ClientReply) -> Void
    ) {
        guard runtime != nil else {
            completion(
                ClusterNode.ClientReply(
                    request: 0, outcome: .notReady(reason: "starting"), replicas: [], hinted: false))
            return
        }
        let request = nextRequest
        nextRequest += 1
        guard pending.insert(ClosureReceiver(completion), forKey: request) else {
            let reason = "\(pending.count) requests wait for an answer on this node"
            completion(
                ClusterNode.ClientReply(
                    request: request, outcome: .overloaded(reason: reason), replicas: [], hinted: false))
            return
        }
        input(.client(request: request, operation, deadline: deadline))
    }

    func submitInline(_ operation: ClusterNode.ClientOperation, deadline: Instant?) -> NodeDriver.Submitted {
        guard runtime != nil else {
            return .answered(
                ClusterNode.ClientReply(
                    request: 0, outcome: .notReady(reason: "starting"), replicas: [], hinted: false))
        }
        let request = nextRequest
        nextRequest += 1
        precondition(inlineRequest == nil, "request \(request) handed in inline during another")
        inlineRequest = request
        input(.client(request: request, operation, deadline: deadline))
        inlineRequest = nil
        if let reply = inlineReply {
            inlineReply = nil
            return .answered(reply)
        }
        return .pending(request)
    }

    func whenAnswered(_ request: UInt64, _ receiver: ClientReplyReceiver) {
        precondition(pending[request] == nil, "two waits for request \(request)")
        pending[request] = receiver
    }

    func withNode<T>(_ body: (inout ClusterNode, Instant) -> ([ClusterNode.Effect], T)) -> T {
        var answer: T?
        let now = clock.now()
        step { answer = $0.perform(now: now, body) }
        return answer!
    }

    func input(_ input: ClusterNode.Input) {
        // First, and without touching the runtime (the step holds it): a part reported at once, from
        // inside a step. The node takes it when the step is done.
        guard !stepping else {
            arrived.append(input)
            return
        }
        guard runtime != nil else { return }
        if case .peer(.membership(let message)) = input { transport?.heardFrom(message.senderAddress) }
        step { $0.handle(input, now: clock.now()) }
        if case .snapshotWritten = input, let ready, runtime?.value.node.isMigrating == false {
            self.ready = nil
            logger.notice("migration done: the data directory now holds versioned entries")
            ready.succeed(())
        }
    }

    /// Runs one step of the node (and the inputs parts reported during it), then hands out the
    /// replies it made: a receiver may hand in its next request, which is a step of its own.
    private func step(_ body: (inout Runtime) -> Void) {
        precondition(!stepping, "a step of the node began inside another")
        stepping = true
        body(&runtime!.value)
        while !arrived.isEmpty, runtime != nil {
            let next = arrived.removeFirst()
            runtime!.value.handle(next, now: clock.now())
        }
        arrived.removeAll()
        stepping = false
        guard runtime != nil else { return }
        // Any step may change the ring (a member reached, a status changed): data answers carry it.
        ring.store(runtime!.value.node.ring.version)
        let outcome = runtime!.value.host.takeOutcome()
        for reply in outcome.replies {
            if reply.request == inlineRequest {
                inlineReply = reply
            } else {
                pending.removeValue(forKey: reply.request)?.received(reply)
            }
        }
        if outcome.leaveCompleted { onLeaveCompleted?() }
    }

    /// Hands the allocator's figure to the node every `memoryReportInterval`.
    private func scheduleMemoryReport() {
        memoryReports = loop.assumeIsolated().scheduleTask(in: Self.memoryReportInterval) { [unowned self] in
            if let allocated = Jemalloc.allocatedBytes() { self.input(.memoryReported(allocatedBytes: allocated)) }
            self.reportsSinceUpkeepLog += 1
            if self.reportsSinceUpkeepLog >= Self.upkeepLogEvery {
                self.reportsSinceUpkeepLog = 0
                self.logUpkeep()
            }
            self.scheduleMemoryReport()
        }
    }

    /// Every 5 s at `debug`, when something moved: the repair machinery's progress since the last line.
    static let upkeepLogEvery = 50
    private var reportsSinceUpkeepLog = 0
    private var lastUpkeep = StoreStatistics()

    private func logUpkeep() {
        guard logger.logLevel <= .debug, let node else { return }
        let now = node.statistics
        let last = lastUpkeep
        lastUpkeep = now
        let moved =
            now.readRepairs != last.readRepairs || now.antiEntropyKeysPushed != last.antiEntropyKeysPushed
            || now.handoffsDelivered != last.handoffsDelivered || node.handoffBacklog > 0
        guard moved else { return }
        logger.debug(
            "replica upkeep",
            metadata: [
                "handoff_backlog": .number(node.handoffBacklog),
                "handoffs_delivered": .number(now.handoffsDelivered - last.handoffsDelivered),
                "read_repairs": .number(now.readRepairs - last.readRepairs),
                "anti_entropy_rounds": .number(now.antiEntropyRounds - last.antiEntropyRounds),
                "anti_entropy_keys_pushed": .number(now.antiEntropyKeysPushed - last.antiEntropyKeysPushed),
                "entries": .number(now.entries), "requests_in_flight": .number(node.requestsInFlight),
            ])
    }
}
