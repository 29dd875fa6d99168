import CacheCore
import HistoryCheckers

public struct ClusterSimulation {
    public struct Options: Sendable {
        /// Node count; `nil` draws 3 to 7 from the seed.
        public var nodes: Int?
        /// Replication factor; `nil` draws it from the seed.
        public var replicationFactor: Int?
        public var clients = 4
        /// Membership alone: no clients, no logs, membership checkers.
        public var membershipOnly = false
        /// Simulated seconds with faults on (default: 20 for cluster runs, 30 for membership runs).
        public var safetySeconds: Int?
        /// Simulated seconds the liveness phase may take to converge (membership runs: 60 periods).
        public var convergenceBoundSeconds = 60
        public var trace = false
        public var injectedBug: ClusterNode.Configuration.InjectedBug?
        public var injectedMembershipBug: Membership.Configuration.InjectedBug?

        public init() {}
    }

    /// Keys whose operations all use `quorum` or `all`, and no TTL: checked for linearizability.
    static let linearizableKeys = (0..<6).map { "k\($0)" }
    /// Keys used at every level, including `one`: checked for convergence and durability only.
    static let eventualKeys = (0..<3).map { "e\($0)" }
    /// Keys written with short TTLs.
    static let expiringKeys = (0..<3).map { "t\($0)" }

    enum Event {
        case deliver(to: Int, frame: [UInt8])
        /// The transport of node `node` could not hand `message` to `to`.
        case undeliverable(node: Int, to: String, PeerMessage)
        /// A connection attempt of node `node` (in its life `generation`) to `to` ends.
        case connectEnded(node: Int, generation: Int, to: String)
        case timer(node: Int)
        case diskSynced(node: Int, generation: Int)
        case snapshotWritten(node: Int, generation: Int, LogSnapshot)
        /// A full disk has room again.
        case diskFreed(node: Int)
        case client(Int)
        /// The client stops waiting for operation `operation` if it is still in flight.
        case giveUp(client: Int, operation: Int)
        case fault
        case restart(node: Int)
        /// The membership change (`SwarmConfiguration.membershipChange`): the late node starts, the
        /// leaver is asked to leave, the doomed node crashes for good, a node is told to forget it.
        case join
        case leave
        case crashForGood
        case forget
        /// The operator reads `/cluster` on every node after a departure: a node that still holds
        /// the departed member dead (it missed the news, or lost it to a power loss before its log
        /// synced it) is told to forget it (docs/cluster-operations.md).
        case operatorCheck
        case heal
        case livenessCheck
        /// A grace period after converging: tombstones must have been collected, nothing diverged.
        case collectionCheck
    }

    /// One client operation and how it ended: what its client saw (`recorded`, which the shared
    /// history checkers read) and what the simulator knows besides.
    struct Operation {
        typealias Kind = RecordedOperation.Kind
        typealias Outcome = RecordedOperation.Outcome

        var recorded: RecordedOperation
        /// Writes: the version acknowledged.
        var version: Version?
        var expiresAt: Instant?
        var replicas: [NodeID] = []
        var hinted = false

        init(client: Int, key: String, kind: Kind, level: ConsistencyLevel, node: Int, invoke: Instant) {
            recorded = RecordedOperation(client: client, key: key, kind: kind, level: level, node: node, invoke: invoke)
        }

        var client: Int { recorded.client }
        var key: String { recorded.key }
        var kind: Kind { recorded.kind }
        var level: ConsistencyLevel { recorded.level }
        var node: Int { recorded.node }
        var invoke: Instant { recorded.invoke }
        var complete: Instant {
            get { recorded.complete }
            set { recorded.complete = newValue }
        }
        var outcome: Outcome {
            get { recorded.outcome }
            set { recorded.outcome = newValue }
        }
        /// Reads: the value seen (`nil`: absent).
        var read: Int? {
            get { recorded.read }
            set { recorded.read = newValue }
        }
    }

    let seed: UInt64
    let options: Options
    /// What this run is made of, drawn from its seed when it is made.
    public let swarm: SwarmConfiguration
    let configuration: ClusterNode.Configuration
    let safetySeconds: Int
    var random: SplitMix64
    /// Each node's outbound links, by peer address: the server's own `PeerLinkStateMachine`, with
    /// the frames it queued and the life of the peer its connection reached.
    var links: [[String: SimulatedLink]] = []
    /// Backoff jitter of the links.
    var linkRandom: SplitMix64
    var linkConnections = 0
    var linkConnectFailures = 0
    var linkRefusals = 0
    var faults: SplitMix64
    var workload: SplitMix64
    var queue = EventQueue<Event>()
    var network: SimulatedNetwork
    var nodes: [SimulatedNode] = []
    var inFlight: [Int?] = []
    var history: [Operation] = []
    /// When every node lost power.
    var powerLosses: [Instant] = []
    /// When a node last started: it holds the writes it takes for the clock offset after that.
    var lastStart = SimulatedTime.start
    /// When a node's sync failed (an I/O error or a full disk): what it covered stays unsynced
    /// until the log is repaired.
    var syncFailures: [Instant] = []
    var now = SimulatedTime.start
    var faultsOn = true
    var clientsOn = true
    var livenessStart = SimulatedTime.start
    var convergedAfter: Instant?
    var finished = false
    /// Membership runs: the node crashed at the start of the liveness phase.
    var victim: Int?
    /// The newest tombstone version collected per key (from the nodes' `collected` effects).
    var collected: [CacheKey: Version] = [:]
    /// The node the membership change is about.
    var changed: Int?
    /// Nodes gone for good: left, or crashed and forgotten.
    var departed: Set<Int> = []
    /// Whether a node was forgotten (its disk is lost: a write held by it alone may be lost too).
    var forgot = false
    /// The operator's choices (which node, when), apart from every other stream.
    var operatorRandom: SplitMix64
    var violations: [String] = []
    var trace: Trace
    var linearizabilityChecked = 0
    var snapshotsWritten = 0
    var diskFaults = 0
    var writesRefusedForDisk = 0
    var logRepairs = 0
    /// Starts that failed because the log could not be read, and the stream that draws them (apart
    /// from the others, so that runs without them are the runs they were).
    var logReadFailures = 0
    var readFaults: SplitMix64

    /// A run decided entirely by `seed`.
    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        let root = SplitMix64(seed: seed)
        var swarmRandom = root.derived(stream: 1)
        let swarm = SwarmConfiguration.draw(
            nodes: options.nodes, replicationFactor: options.replicationFactor, keepsLogs: !options.membershipOnly,
            using: &swarmRandom)
        self.swarm = swarm
        safetySeconds = options.safetySeconds ?? (options.membershipOnly ? 30 : 20)
        random = root.derived(stream: 2)
        faults = root.derived(stream: 3)
        workload = root.derived(stream: 4)
        operatorRandom = root.derived(stream: 7)
        linkRandom = root.derived(stream: 8)
        readFaults = root.derived(stream: 9)
        var configuration = ClusterNode.Configuration()
        configuration.replicationFactor = swarm.replicationFactor
        var membership = Membership.Configuration(
            protocolPeriod: SimulatedTime.protocolPeriod,
            probeTimeout: SimulatedTime.probeTimeout,
            suspicionTimeout: SimulatedTime.suspicionTimeout)
        membership.injectedBug = options.injectedMembershipBug
        configuration.membership = membership
        configuration.injectedBug = options.injectedBug
        configuration.tombstoneGrace = SimulatedTime.tombstoneGrace
        configuration.limits = StoreLimits(maximumEntries: swarm.maximumEntries)
        configuration.compaction = CompactionPolicy(minimumLogBytes: swarm.compactionBytes, minimumRatio: 2)
        configuration.reportsEvictedKeys = true
        // Well above the skew drift makes over a run (±5 % of 80 s), so that only a clock set past it
        // on purpose (`SwarmConfiguration.fastClock`) is past it.
        configuration.maximumClockOffset = SimulatedTime.maximumClockOffset
        self.configuration = configuration
        let addresses = (0..<swarm.nodes).map { "10.0.0.\($0):7000" }
        network = SimulatedNetwork(addresses: addresses, swarm: swarm, random: root.derived(stream: 6))
        trace = Trace(keepsEverything: options.trace)
    }

    /// Events after which a run is declared runaway.
    static let maximumEvents = 3_000_000

    /// How long the idle period after convergence lasts: a tombstone older than the grace period is
    /// collected by its first replica, or by any other a quarter of the grace later, plus time to
    /// finish.
    var collectionWait: Duration { SimulatedTime.tombstoneGrace * 5 / 4 + .seconds(3) }

    /// Runs both phases and every checker.
    public mutating func run() -> SimulationResult {
        for index in 0..<swarm.nodes {
            let drift = (random.nextUnit() * 2 - 1) * swarm.maximumClockDrift
            var offset = random.duration(below: options.membershipOnly ? .seconds(2) : .milliseconds(50))
            // One node's clock set past the bound: it must refuse writes, and nobody may adopt its clock.
            if swarm.fastClock, index == swarm.nodes - 1 { offset += SimulatedTime.maximumClockOffset * 3 }
            nodes.append(
                SimulatedNode(id: NodeID("n\(index)"), address: network.addresses[index], drift: drift, offset: offset))
        }
        links = Array(repeating: [:], count: nodes.count)
        let safetyEnd = SimulatedTime.start + .seconds(safetySeconds)
        scheduleMembershipChange(before: SimulatedTime.start + .seconds(safetySeconds) / 2)
        for index in nodes.indices where !(swarm.membershipChange == .join && index == changed) { start(index) }
        if !options.membershipOnly {
            inFlight = Array(repeating: nil, count: options.clients)
            for client in 0..<options.clients {
                queue.push(.client(client), at: SimulatedTime.start + .milliseconds(500) + .nanoseconds(client))
            }
        }
        queue.push(.fault, at: SimulatedTime.start + SimulatedTime.faultStep)
        queue.push(.heal, at: safetyEnd)
        let bound =
            options.membershipOnly
            ? safetyEnd + SimulatedTime.protocolPeriod * 65
            : safetyEnd + .seconds(options.convergenceBoundSeconds) + collectionWait
        while let (time, event) = queue.pop(), time <= bound, !finished, violations.count < 5 {
            now = time
            handle(event)
            // A run takes tens of thousands of events; millions mean a node spins (a timer that is
            // always due, messages that beget messages without end).
            if trace.events > Self.maximumEvents {
                violations.append(
                    "runaway: more than \(Self.maximumEvents) events by \(now.nanosecondsSinceEpoch / 1_000_000) ms")
                finished = true
            }
        }
        if convergedAfter == nil, violations.isEmpty {
            let reason =
                options.membershipOnly
                ? MembershipChecker.disagreement(nodes, victim: victim)
                : ConvergenceChecker.divergence(
                    nodes, departed: departed, allowsMissingReplicas: swarm.maximumEntries != nil,
                    keepsTombstones: tombstoneKeeper)
            let bound = options.membershipOnly ? "60 periods" : "\(options.convergenceBoundSeconds) s"
            violations.append("convergence: not reached within \(bound) of healing: \(reason ?? "converged too late")")
        }
        if violations.isEmpty, !options.membershipOnly { checkHistory() }
        if violations.isEmpty, !options.membershipOnly {
            violations += ClockChecker.violations(
                nodes, localTime: localTime(of:), bound: configuration.maximumClockOffset)
        }
        var flags = ""
        if options.membershipOnly { flags += " --membership-only" }
        if let nodes = options.nodes { flags += " --nodes \(nodes)" }
        if let factor = options.replicationFactor { flags += " --replication-factor \(factor)" }
        if let bug = options.injectedBug { flags += " --inject-bug \(bug.rawValue)" }
        if let bug = options.injectedMembershipBug { flags += " --inject-bug \(bug.rawValue)" }
        if let seconds = options.safetySeconds { flags += " --safety-seconds \(seconds)" }
        return SimulationResult(
            seed: seed, swarm: swarm, traceHash: trace.hash, events: trace.events,
            convergencePeriods: convergedAfter.map {
                Int(($0 - livenessStart).nanoseconds / SimulatedTime.protocolPeriod.nanoseconds)
            },
            violations: violations, lastEvents: trace.lines, operations: history.count,
            linearizabilityChecked: linearizabilityChecked,
            evictions: nodes.reduce(0) { $0 + Int($1.runtime?.node.statistics.evictions ?? 0) },
            snapshots: snapshotsWritten,
            writesRefusedForClock: nodes.reduce(0) { $0 + Int($1.runtime?.node.statistics.writesRefusedForClock ?? 0) },
            linkConnections: linkConnections, linkConnectFailures: linkConnectFailures, linkRefusals: linkRefusals,
            diskFaults: diskFaults, writesRefusedForDisk: writesRefusedForDisk, logRepairs: logRepairs,
            logReadFailures: logReadFailures, powerLosses: powerLosses.count,
            replayFlags: flags)
    }

    // MARK: Events

    mutating func handle(_ event: Event) {
        switch event {
        case .deliver(let to, let frame):
            trace.record(.deliver(to: to, frame: frame), at: now) { "deliver to n\(to): \(Trace.summary(frame))" }
            guard nodes[to].isRunning else { return }
            guard case .frame(let message, let next) = PeerProtocol.decode(frame), next == frame.count else {
                violations.append("codec: a frame the encoder wrote did not decode")
                return
            }
            if case .replication(let replication) = message,
                case .write(let request?, let key, let entry, _) = replication.body
            {
                let local = localTime(of: to)
                let collected =
                    !entry.isLive(at: local) && entry.deadSince.advanced(by: configuration.tombstoneGrace) <= local
                nodes[to].writesReceived[request] = (CacheKey(bytes: key), entry.version, collected)
            }
            if case .replication(let replication) = message,
                case .writeReply(_, .refused(let reason)) = replication.body, SimulatedDisk.isDiskReason(reason)
            {
                writesRefusedForDisk += 1
            }
            if case .membership(let membership) = message {
                let local = localTime(of: to)
                links[to][membership.senderAddress]?.machine.heardFrom(now: local)
            }
            step(to, .peer(message))
        case .connectEnded(let index, let generation, let address):
            guard nodes[index].isRunning, nodes[index].generation == generation else { return }
            connectEnded(index, to: address)
        case .undeliverable(let index, let address, let message):
            guard nodes[index].isRunning else { return }
            trace.record(.undeliverable(node: index), at: now) { "n\(index) could not reach \(address)" }
            step(index, .undeliverable(to: address, message))
        case .timer(let index):
            guard nodes[index].timerAt == now, nodes[index].isRunning else { return }
            nodes[index].timerAt = nil
            trace.record(.timer(node: index), at: now) { "timer n\(index)" }
            step(index, .timer)
        case .diskSynced(let index, let generation):
            guard generation == nodes[index].generation, nodes[index].isRunning else { return }
            let upTo = nodes[index].disk.lastAppended
            let fails = nodes[index].disk.isFull || nodes[index].disk.failsNextSync
            if fails { syncFailures.append(now) }
            trace.record(.diskSynced(node: index, upTo: upTo), at: now) {
                fails ? "n\(index)'s sync up to \(upTo) fails" : "n\(index) log durable up to \(upTo)"
            }
            let output = nodes[index].synced(now: localTime(of: index), simulationTime: now)
            route(output, from: index)
        case .snapshotWritten(let index, let generation, let snapshot):
            guard generation == nodes[index].generation, nodes[index].isRunning else { return }
            trace.record(.snapshotWritten(node: index, upTo: snapshot.upTo), at: now) {
                "n\(index) snapshot up to \(snapshot.upTo) written"
            }
            snapshotsWritten += 1
            let output = nodes[index].snapshotWritten(snapshot, now: localTime(of: index), simulationTime: now)
            route(output, from: index)
        case .diskFreed(let index):
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s disk has room again" }
            nodes[index].disk.isFull = false
        case .client(let client):
            clientStep(client)
        case .giveUp(let client, let operation):
            guard inFlight[client] == operation else { return }
            trace.record(.giveUp(operation: operation), at: now) { "client \(client) gives up on op \(operation)" }
            history[operation].outcome = .unknown
            inFlight[client] = nil
            clientStep(client)
        case .fault:
            trace.record(.fault, at: now) { "fault step" }
            injectFaults()
            if faultsOn { queue.push(.fault, at: now + SimulatedTime.faultStep) }
        case .restart(let index):
            trace.record(.restart(node: index), at: now) { "restart n\(index)" }
            if !nodes[index].isRunning, index != victim, !departed.contains(index) {
                start(index)
                // A node that crashed while leaving comes back a member: the operator asks again.
                if swarm.membershipChange == .leave, index == changed {
                    queue.push(.leave, at: now + .milliseconds(500))
                }
            }
        case .join:
            let joining = changed!
            trace.record(.restart(node: joining), at: now) { "n\(joining) starts and joins" }
            if !nodes[changed!].isRunning { start(changed!) }
        case .leave:
            let index = changed!
            guard nodes[index].isRunning, !departed.contains(index) else { return }
            trace.record(.fault, at: now) { "n\(index) is asked to leave" }
            if let output = nodes[index].leave(now: localTime(of: index), simulationTime: now) {
                route(output, from: index)
            } else {
                // Refused (no other member alive to take its keys, as it sees it): ask again later.
                queue.push(.leave, at: now + .seconds(1))
            }
        case .crashForGood:
            let index = changed!
            trace.record(.crash(node: index), at: now) { "n\(index) crashes for good" }
            if nodes[index].isRunning { crash(index, powerLoss: crashesLosePower) }
            departed.insert(index)
            queue.push(.forget, at: now + SimulatedTime.suspicionTimeout * 3)
        case .forget:
            let doomed = changed!
            let others = nodes.indices.filter { $0 != doomed && nodes[$0].isRunning }
            guard let index = others.isEmpty ? nil : others[operatorRandom.below(others.count)] else {
                queue.push(.forget, at: now + .seconds(1))
                return
            }
            trace.record(.fault, at: now) { "n\(index) is asked to forget n\(doomed)" }
            if let output = nodes[index].forget(nodes[doomed].id, now: localTime(of: index), simulationTime: now) {
                forgot = true
                route(output, from: index)
                queue.push(.operatorCheck, at: now + .seconds(2))
            } else {
                // Refused (the node does not hold it dead yet): ask again later.
                queue.push(.forget, at: now + .seconds(1))
            }
        case .operatorCheck:
            for departedIndex in departed.sorted() {
                for index in nodes.indices where nodes[index].isRunning && !departed.contains(index) {
                    guard nodes[index].runtime?.node.membership.status(of: nodes[departedIndex].id) == .dead else {
                        continue
                    }
                    trace.record(.fault, at: now) { "n\(index) is asked to forget n\(departedIndex) (again)" }
                    if let output = nodes[index].forget(
                        nodes[departedIndex].id, now: localTime(of: index), simulationTime: now)
                    {
                        route(output, from: index)
                    }
                }
            }
            if !finished { queue.push(.operatorCheck, at: now + .seconds(2)) }
        case .heal:
            heal()
        case .livenessCheck:
            livenessCheck()
        case .collectionCheck:
            trace.record(.check, at: now) { "collection check" }
            checkCollection()
        }
        if options.membershipOnly { checkIncarnations() }
    }

    /// Hands `input` to node `index` and carries out what it asks.
    mutating func step(_ index: Int, _ input: ClusterNode.Input) {
        let output = nodes[index].step(input, now: localTime(of: index), simulationTime: now)
        route(output, from: index)
    }

    mutating func route(_ output: SimulatedNode.Output, from index: Int) {
        for (address, message) in output.sends {
            if let violation = AcknowledgmentChecker.violation(message, from: nodes[index], index: index) {
                violations.append(violation)
            }
            guard let to = network.index(of: address) else { continue }
            send(message, from: index, to: to, address: address)
        }
        for (key, version) in output.collected {
            let cacheKey = CacheKey(bytes: key)
            collected[cacheKey] = max(collected[cacheKey] ?? version, version)
        }
        for reply in output.replies { completed(reply, at: index) }
        logRepairs += output.repairs
        if output.leaveCompleted {
            // Everything handed off: the process exits, for good.
            trace.record(.crash(node: index), at: now) { "n\(index) has left" }
            departed.insert(index)
            crash(index, powerLoss: false)
            queue.push(.operatorCheck, at: now + .seconds(2))
            return
        }
        if output.syncs > 0 {
            queue.push(
                .diskSynced(node: index, generation: nodes[index].generation),
                at: now + SimulatedTime.minimumDiskLatency + random.duration(below: swarm.maximumSyncLatency))
        }
        for snapshot in output.snapshots {
            queue.push(
                .snapshotWritten(node: index, generation: nodes[index].generation, snapshot),
                at: now + SimulatedTime.minimumDiskLatency + random.duration(below: swarm.maximumSyncLatency * 2))
        }
        if let timer = output.timer { scheduleTimer(index, at: timer) }
    }

    mutating func scheduleTimer(_ index: Int, at deadline: Instant) {
        // The node's clock runs at `1 + drift` of simulation time: its wait, in simulation time.
        let wait = max(1, localTime(of: index).nanoseconds(to: deadline))
        let at = now + .nanoseconds(max(1, Int64(Double(wait) / (1 + nodes[index].drift))))
        nodes[index].timerAt = at
        queue.push(.timer(node: index), at: at)
    }

    func localTime(of index: Int) -> Instant {
        nodes[index].localTime(at: now, origin: SimulatedTime.origin)
    }
}
