import CacheCore

/// What one simulated run found.
public struct SimulationResult: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var swarm: SwarmConfiguration
    /// A hash of every event processed, in order: the same seed must give the same hash.
    public var traceHash: UInt64
    public var events: Int
    /// Protocol periods of the liveness phase until the cluster converged, if it did.
    public var convergencePeriods: Int?
    /// Broken guarantees, one line each; empty when the run passed.
    public var violations: [String]
    /// The last events before the end, readable, for a failure report.
    public var lastEvents: [String]
    /// Client operations issued.
    public var operations = 0
    /// Keys whose history the linearizability checker verified.
    public var linearizabilityChecked = 0
    /// Values evicted during the run, over all nodes.
    public var evictions = 0
    /// Snapshots written during the run, over all nodes.
    public var snapshots = 0
    /// Client writes refused by a node whose clock ran ahead of the others' past the bound.
    public var writesRefusedForClock = 0
    /// Peer links: connections made, attempts that failed, and frames refused while a link backed
    /// off or its queue was full (the server's `PeerLinkStateMachine`, run under the run's faults).
    public var linkConnections = 0
    public var linkConnectFailures = 0
    public var linkRefusals = 0
    /// Disk faults injected (a full disk, a failed sync, a failed snapshot), writes refused because
    /// a log had failed (replicas' answers and clients' replies), and the repairs that made logs
    /// writable again.
    public var diskFaults = 0
    public var writesRefusedForDisk = 0
    public var logRepairs = 0
    /// Flags `cache-sim` needs besides the seed to replay this run.
    public var replayFlags = ""

    public var passed: Bool { violations.isEmpty }

    public var description: String {
        var text =
            "seed \(seed) \(passed ? "ok" : "FAILED") trace=\(String(traceHash, radix: 16)) events=\(events)"
            + (convergencePeriods.map { " converged after \($0) periods" } ?? "")
        if !passed {
            text += "\n  swarm: \(swarm)"
            for violation in violations { text += "\n  violation: \(violation)" }
            text += "\n  last events:"
            for event in lastEvents { text += "\n    \(event)" }
            text += "\n  replay: cache-sim --seed \(seed)\(replayFlags) --trace"
        }
        return text
    }
}

/// Runs whole nodes (`ClusterNode`: membership, ring, replication, log) in one process under one
/// seed, and checks the cluster's guarantees.
///
/// A virtual clock and an event queue drive everything: message deliveries through the real wire
/// codec (delayed, dropped, duplicated, reordered and partitioned by `SimulatedNetwork`), each node's
/// timer on its own drifting clock, disk syncs and snapshots (`SimulatedDisk`), crashes, power losses
/// and restarts through the real recovery. Two kinds of run:
///
/// - a cluster run: clients issue puts, gets and deletes at every consistency level; after the
///   safety phase everything heals, crashed nodes restart, and every key's replicas must agree within
///   a bound; then an idle period in which tombstones must be collected; then the history checkers;
/// - a membership run (no clients, no logs): the liveness phase also crashes one node, and the rest
///   must agree within a bound on who is alive, who is dead, and the ring.
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

    private enum Event {
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
        /// the departed member dead (it missed the news, or lost it in a restart: membership is not
        /// kept on disk) is told to forget it (docs/cluster-operations.md).
        case operatorCheck
        case heal
        case livenessCheck
        /// A grace period after converging: tombstones must have been collected, nothing diverged.
        case collectionCheck
    }

    /// One client operation and how it ended.
    struct Operation {
        enum Kind {
            case put(value: Int, ttl: Duration?)
            case delete
            case get
        }

        enum Outcome {
            case pending
            case ok
            case failed
            /// The client stopped waiting (the coordinator crashed or went silent).
            case unknown
        }

        var client: Int
        var key: String
        var kind: Kind
        var level: ConsistencyLevel
        var node: Int
        var invoke: Int64
        var complete: Int64 = .max
        var outcome = Outcome.pending
        /// Reads: the value seen (`nil`: absent).
        var read: Int?
        /// Writes: the version acknowledged.
        var version: Version?
        var expiresAt: Instant?
        var replicas: [NodeID] = []
        var hinted = false
    }

    private let seed: UInt64
    private let options: Options
    /// What this run is made of, drawn from its seed when it is made.
    public let swarm: SwarmConfiguration
    private let configuration: ClusterNode.Configuration
    private let safetySeconds: Int
    private var random: SplitMix64
    /// Each node's outbound links, by peer address: the server's own `PeerLinkStateMachine`, with
    /// the frames it queued and the life of the peer its connection reached.
    private var links: [[String: SimulatedLink]] = []
    /// Backoff jitter of the links.
    private var linkRandom: SplitMix64
    private var linkConnections = 0
    private var linkConnectFailures = 0
    private var linkRefusals = 0
    private var faults: SplitMix64
    private var workload: SplitMix64
    private var queue = EventQueue<Event>()
    private var network: SimulatedNetwork
    private var nodes: [SimulatedNode] = []
    private var inFlight: [Int?] = []
    private var history: [Operation] = []
    private var now: Int64 = 0
    private var faultsOn = true
    private var clientsOn = true
    private var livenessStart: Int64 = 0
    private var convergedAfter: Int64?
    private var finished = false
    /// Membership runs: the node crashed at the start of the liveness phase.
    private var victim: Int?
    /// The newest tombstone version collected per key (from the nodes' `collected` effects).
    private var collected: [CacheKey: Version] = [:]
    /// The node the membership change is about.
    private var changed: Int?
    /// Nodes gone for good: left, or crashed and forgotten.
    private var departed: Set<Int> = []
    /// Whether a node was forgotten (its disk is lost: a write held by it alone may be lost too).
    private var forgot = false
    /// The operator's choices (which node, when), apart from every other stream.
    private var operatorRandom: SplitMix64
    private var violations: [String] = []
    private var trace: Trace
    private var linearizabilityChecked = 0
    private var snapshotsWritten = 0
    private var diskFaults = 0
    private var writesRefusedForDisk = 0
    private var logRepairs = 0

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
        var configuration = ClusterNode.Configuration()
        configuration.replicationFactor = swarm.replicationFactor
        var membership = Membership.Configuration(
            protocolPeriod: .nanoseconds(SimulatedTime.protocolPeriod),
            probeTimeout: .nanoseconds(SimulatedTime.probeTimeout),
            suspicionTimeout: .nanoseconds(SimulatedTime.suspicionTimeout))
        membership.injectedBug = options.injectedMembershipBug
        configuration.membership = membership
        configuration.injectedBug = options.injectedBug
        configuration.tombstoneGrace = .nanoseconds(SimulatedTime.tombstoneGrace)
        configuration.limits = StoreLimits(maximumEntries: swarm.maximumEntries)
        configuration.compaction = CompactionPolicy(minimumLogBytes: swarm.compactionBytes, minimumRatio: 2)
        configuration.reportsEvictedKeys = true
        // Well above the skew drift makes over a run (±5 % of 80 s), so that only a clock set past it
        // on purpose (`SwarmConfiguration.fastClock`) is past it.
        configuration.maximumClockOffset = .nanoseconds(SimulatedTime.maximumClockOffset)
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
    private var collectionWait: Int64 { SimulatedTime.tombstoneGrace * 5 / 4 + 3 * SimulatedTime.second }

    /// Runs both phases and every checker.
    public mutating func run() -> SimulationResult {
        for index in 0..<swarm.nodes {
            let drift = (random.nextUnit() * 2 - 1) * swarm.maximumClockDrift
            var offset = Int64(random.below(options.membershipOnly ? 2_000_000_000 : 50_000_000))
            // One node's clock set past the bound: it must refuse writes, and nobody may adopt its clock.
            if swarm.fastClock, index == swarm.nodes - 1 { offset += 3 * SimulatedTime.maximumClockOffset }
            nodes.append(
                SimulatedNode(id: NodeID("n\(index)"), address: network.addresses[index], drift: drift, offset: offset))
        }
        links = Array(repeating: [:], count: nodes.count)
        let safetyEnd = Int64(safetySeconds) * SimulatedTime.second
        scheduleMembershipChange(before: safetyEnd / 2)
        for index in nodes.indices where !(swarm.membershipChange == .join && index == changed) { start(index) }
        if !options.membershipOnly {
            inFlight = Array(repeating: nil, count: options.clients)
            for client in 0..<options.clients {
                queue.push(.client(client), at: 500 * SimulatedTime.millisecond + Int64(client))
            }
        }
        queue.push(.fault, at: SimulatedTime.faultStep)
        queue.push(.heal, at: safetyEnd)
        let bound =
            options.membershipOnly
            ? safetyEnd + 65 * SimulatedTime.protocolPeriod
            : safetyEnd + Int64(options.convergenceBoundSeconds) * SimulatedTime.second + collectionWait
        while let (time, event) = queue.pop(), time <= bound, !finished, violations.count < 5 {
            now = time
            handle(event)
            // A run takes tens of thousands of events; millions mean a node spins (a timer that is
            // always due, messages that beget messages without end).
            if trace.events > Self.maximumEvents {
                violations.append(
                    "runaway: more than \(Self.maximumEvents) events by \(now / SimulatedTime.millisecond) ms")
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
            convergencePeriods: convergedAfter.map { Int(($0 - livenessStart) / SimulatedTime.protocolPeriod) },
            violations: violations, lastEvents: trace.lines, operations: history.count,
            linearizabilityChecked: linearizabilityChecked,
            evictions: nodes.reduce(0) { $0 + Int($1.runtime?.node.statistics.evictions ?? 0) },
            snapshots: snapshotsWritten,
            writesRefusedForClock: nodes.reduce(0) { $0 + Int($1.runtime?.node.statistics.writesRefusedForClock ?? 0) },
            linkConnections: linkConnections, linkConnectFailures: linkConnectFailures, linkRefusals: linkRefusals,
            diskFaults: diskFaults, writesRefusedForDisk: writesRefusedForDisk, logRepairs: logRepairs,
            replayFlags: flags)
    }

    // MARK: Events

    private mutating func handle(_ event: Event) {
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
            trace.record(.diskSynced(node: index, upTo: nodes[index].disk.lastAppended), at: now) {
                "n\(index) log durable up to \(nodes[index].disk.lastAppended)"
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
                    queue.push(.leave, at: now + 500 * SimulatedTime.millisecond)
                }
            }
        case .join:
            trace.record(.restart(node: changed!), at: now) { "n\(changed!) starts and joins" }
            if !nodes[changed!].isRunning { start(changed!) }
        case .leave:
            let index = changed!
            guard nodes[index].isRunning, !departed.contains(index) else { return }
            trace.record(.fault, at: now) { "n\(index) is asked to leave" }
            if let output = nodes[index].leave(now: localTime(of: index), simulationTime: now) {
                route(output, from: index)
            } else {
                // Refused (no other member alive to take its keys, as it sees it): ask again later.
                queue.push(.leave, at: now + SimulatedTime.second)
            }
        case .crashForGood:
            let index = changed!
            trace.record(.crash(node: index), at: now) { "n\(index) crashes for good" }
            if nodes[index].isRunning { crash(index, powerLoss: crashesLosePower) }
            departed.insert(index)
            queue.push(.forget, at: now + 3 * SimulatedTime.suspicionTimeout)
        case .forget:
            let doomed = changed!
            let others = nodes.indices.filter { $0 != doomed && nodes[$0].isRunning }
            guard let index = others.isEmpty ? nil : others[operatorRandom.below(others.count)] else {
                queue.push(.forget, at: now + SimulatedTime.second)
                return
            }
            trace.record(.fault, at: now) { "n\(index) is asked to forget n\(doomed)" }
            if let output = nodes[index].forget(nodes[doomed].id, now: localTime(of: index), simulationTime: now) {
                forgot = true
                route(output, from: index)
                queue.push(.operatorCheck, at: now + 2 * SimulatedTime.second)
            } else {
                // Refused (the node does not hold it dead yet): ask again later.
                queue.push(.forget, at: now + SimulatedTime.second)
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
            if !finished { queue.push(.operatorCheck, at: now + 2 * SimulatedTime.second) }
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
    private mutating func step(_ index: Int, _ input: ClusterNode.Input) {
        let output = nodes[index].step(input, now: localTime(of: index), simulationTime: now)
        route(output, from: index)
    }

    private mutating func route(_ output: SimulatedNode.Output, from index: Int) {
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
            queue.push(.operatorCheck, at: now + 2 * SimulatedTime.second)
            return
        }
        if output.syncs > 0 {
            queue.push(
                .diskSynced(node: index, generation: nodes[index].generation),
                at: now + SimulatedTime.minimumDiskLatency + Int64(random.below(Int(swarm.maximumSyncLatency))))
        }
        for snapshot in output.snapshots {
            queue.push(
                .snapshotWritten(node: index, generation: nodes[index].generation, snapshot),
                at: now + SimulatedTime.minimumDiskLatency + Int64(random.below(Int(swarm.maximumSyncLatency) * 2)))
        }
        if let timer = output.timer { scheduleTimer(index, at: timer) }
    }

    private mutating func scheduleTimer(_ index: Int, at deadline: Instant) {
        let wait = max(1, localTime(of: index).nanoseconds(to: deadline))
        let at = now + max(1, Int64(Double(wait) / (1 + nodes[index].drift)))
        nodes[index].timerAt = at
        queue.push(.timer(node: index), at: at)
    }

    private func localTime(of index: Int) -> Instant {
        nodes[index].localTime(at: now, origin: SimulatedTime.origin)
    }

    // MARK: Nodes and faults

    private mutating func start(_ index: Int) {
        let seeds = nodes.indices.filter { $0 != index }.map { nodes[$0].address }
        let output = nodes[index].start(
            configuration: configuration, policy: swarm.syncPolicy, seed: random.next(),
            seeds: Array(seeds.prefix(3)), now: localTime(of: index), simulationTime: now)
        route(output, from: index)
    }

    /// Picks the node and the time of the run's membership change, before `deadline`.
    private mutating func scheduleMembershipChange(before deadline: Int64) {
        guard swarm.membershipChange != .none, !options.membershipOnly else { return }
        let second = SimulatedTime.second
        let at = second + Int64(operatorRandom.below(Int(max(second, deadline - second))))
        switch swarm.membershipChange {
        case .none:
            break
        case .join:
            changed = nodes.count - 1
            queue.push(.join, at: at)
        case .leave:
            changed = operatorRandom.below(nodes.count)
            queue.push(.leave, at: at + second)
        case .forget:
            changed = operatorRandom.below(nodes.count)
            queue.push(.crashForGood, at: at)
        }
    }

    // MARK: Peer links

    /// Hands `message` to node `index`'s link to `address` (node `to`), as the server's transport
    /// does: written on a connection, queued while one is made, or refused (reported back to the
    /// node as undeliverable) while the link backs off or its queue is full.
    private mutating func send(_ message: PeerMessage, from index: Int, to: Int, address: String) {
        let frame = PeerProtocol.encode(message)
        let local = localTime(of: index)
        var link = links[index][address] ?? SimulatedLink()
        // A connection to an earlier life of the peer closed when that process died.
        if case .connected = link.machine.state, link.peerGeneration != nodes[to].generation || !nodes[to].isRunning {
            link.peerGeneration = nil
            link.machine.closed()
        }
        switch link.machine.send(bytes: frame.count, writable: true, now: local) {
        case .write:
            links[index][address] = link
            transmit(frame, from: index, to: to)
        case .queue:
            link.queue.append((message, frame.count))
            links[index][address] = link
        case .queueAndConnect:
            link.queue.append((message, frame.count))
            links[index][address] = link
            // Refused at once by a peer that is down; a peer cut off answers nothing, and the
            // attempt gives up after the connect timeout (one second, as the server's).
            let reachable = network.canConnect(from: index, to: to)
            let wait = reachable ? 2 * swarm.minimumLatency + SimulatedTime.millisecond : SimulatedTime.second
            queue.push(.connectEnded(node: index, generation: nodes[index].generation, to: address), at: now + wait)
        case .refuse:
            links[index][address] = link
            linkRefusals += 1
            queue.push(.undeliverable(node: index, to: address, message), at: now + SimulatedTime.millisecond)
        }
    }

    /// Puts `frame` on the network from node `index` to node `to`: it arrives never, once or twice.
    private mutating func transmit(_ frame: [UInt8], from index: Int, to: Int) {
        for time in network.deliveries(from: index, to: to, now: now) {
            queue.push(.deliver(to: to, frame: frame), at: time)
        }
    }

    /// Node `index`'s attempt to connect to `address` ends: connected if the peer runs and the
    /// network lets the connection through, and what waited is written; else every queued frame is
    /// refused and the link backs off.
    private mutating func connectEnded(_ index: Int, to address: String) {
        guard var link = links[index][address], case .connecting = link.machine.state,
            let to = network.index(of: address)
        else { return }
        let waiting = link.queue
        link.queue = []
        if nodes[to].isRunning, network.canConnect(from: index, to: to) {
            link.machine.connected()
            linkConnections += 1
            link.peerGeneration = nodes[to].generation
            for (message, bytes) in waiting {
                link.machine.dequeued(bytes: bytes)
                transmit(PeerProtocol.encode(message), from: index, to: to)
            }
            links[index][address] = link
            return
        }
        _ = link.machine.failed(now: localTime(of: index), jitter: linkRandom.nextUnit())
        linkConnectFailures += 1
        links[index][address] = link
        trace.record(.undeliverable(node: index), at: now) { "n\(index) could not connect to \(address)" }
        for (message, _) in waiting { step(index, .undeliverable(to: address, message)) }
    }

    private mutating func crash(_ index: Int, powerLoss: Bool) {
        trace.record(.crash(node: index), at: now) { "crash n\(index)\(powerLoss ? " (power)" : "")" }
        // The process's connections die with it; a restarted one connects afresh.
        links[index] = [:]
        var draws = faults
        nodes[index].crash(powerLoss: powerLoss) { written in draws.below(written + 1) }
        faults = draws
    }

    /// Under `always`, every crash loses what was not synced (the policy promises to survive power
    /// losses); under the others a crash is the process's alone and the written bytes stay.
    private var crashesLosePower: Bool { swarm.syncPolicy == .always }

    private mutating func injectFaults() {
        guard faultsOn else { return }
        network.heal(now: now)
        let step = Double(SimulatedTime.faultStep) / Double(SimulatedTime.second)
        if faults.nextUnit() < swarm.partitionsPerSecond * step { network.partition(using: &faults, now: now) }
        if faults.nextUnit() < swarm.powerLossesPerSecond * step {
            for index in nodes.indices where nodes[index].isRunning {
                crash(index, powerLoss: true)
                queue.push(
                    .restart(node: index),
                    at: now + SimulatedTime.powerDowntime + Int64(faults.below(Int(SimulatedTime.powerDowntimeSpread))))
            }
        }
        if swarm.diskFaultsPerSecond > 0, faults.nextUnit() < swarm.diskFaultsPerSecond * step {
            injectDiskFault(into: faults.below(nodes.count))
        }
        if faults.nextUnit() < swarm.crashesPerSecond * step {
            let index = faults.below(nodes.count)
            if nodes[index].isRunning {
                crash(index, powerLoss: crashesLosePower)
                queue.push(
                    .restart(node: index),
                    at: now + SimulatedTime.crashDowntime + Int64(faults.below(Int(SimulatedTime.crashDowntimeSpread))))
            }
        }
    }

    /// A fault of one node's disk (the disk outlives a crash, and so does the fault): it fills up
    /// for 0.2 to 2 s, or its next sync or snapshot fails.
    private mutating func injectDiskFault(into index: Int) {
        diskFaults += 1
        switch faults.below(3) {
        case 0:
            guard !nodes[index].disk.isFull else { return }
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s disk is full" }
            nodes[index].disk.isFull = true
            let duration = 200 * SimulatedTime.millisecond + Int64(faults.below(Int(1800 * SimulatedTime.millisecond)))
            queue.push(.diskFreed(node: index), at: now + duration)
        case 1:
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s next sync fails" }
            nodes[index].disk.failsNextSync = true
        default:
            trace.record(.diskFault(node: index), at: now) { "n\(index)'s next snapshot fails" }
            nodes[index].disk.failsNextSnapshot = true
        }
    }

    /// The liveness phase: heal, restart, stop the clients (membership runs: crash one node).
    private mutating func heal() {
        trace.record(.heal, at: now) { "liveness phase: heal, restart, stop clients" }
        faultsOn = false
        clientsOn = false
        network.faulty = false
        for index in nodes.indices {
            nodes[index].disk.isFull = false
            nodes[index].disk.failsNextSync = false
            nodes[index].disk.failsNextSnapshot = false
        }
        network.heal(now: now, force: true)
        livenessStart = now
        if options.membershipOnly, nodes.count >= 3 {
            let live = nodes.indices.filter { nodes[$0].isRunning }
            if let chosen = live.randomElement(using: &random) {
                victim = chosen
                crash(chosen, powerLoss: false)
            }
        }
        for index in nodes.indices where !nodes[index].isRunning && index != victim && !departed.contains(index) {
            start(index)
        }
        queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
    }

    private mutating func livenessCheck() {
        if options.membershipOnly {
            if MembershipChecker.disagreement(nodes, victim: victim) == nil {
                convergedAfter = now
                finished = true
            } else if now - livenessStart < 60 * SimulatedTime.protocolPeriod {
                queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
            } else {
                finished = true
            }
            return
        }
        if ConvergenceChecker.divergence(
            nodes, departed: departed, allowsMissingReplicas: swarm.maximumEntries != nil,
            keepsTombstones: tombstoneKeeper) == nil
        {
            convergedAfter = now
            queue.push(.collectionCheck, at: now + collectionWait)
        } else if now - livenessStart >= Int64(options.convergenceBoundSeconds) * SimulatedTime.second {
            finished = true
        } else {
            queue.push(.livenessCheck, at: now + SimulatedTime.protocolPeriod)
        }
    }

    // MARK: Clients

    private mutating func clientStep(_ client: Int) {
        guard clientsOn, inFlight[client] == nil else { return }
        let live = nodes.indices.filter { nodes[$0].isRunning }
        guard !live.isEmpty else {
            queue.push(.client(client), at: now + 100 * SimulatedTime.millisecond)
            return
        }
        let node = live[workload.below(live.count)]
        let family = workload.below(10)
        let key: String
        var levels: [ConsistencyLevel] = [.quorum, .all]
        var ttl: Duration?
        if family < 6 {
            key = Self.linearizableKeys[workload.below(Self.linearizableKeys.count)]
        } else if family < 8 {
            key = Self.eventualKeys[workload.below(Self.eventualKeys.count)]
            levels = ConsistencyLevel.allCases
        } else {
            key = Self.expiringKeys[workload.below(Self.expiringKeys.count)]
            levels = [.quorum]
            ttl = .nanoseconds(Int64(200_000_000 + workload.below(2_000_000_000)))
        }
        let level = levels[workload.below(levels.count)]
        let kind: Operation.Kind
        switch workload.below(10) {
        case 0..<4: kind = .put(value: history.count, ttl: ttl)
        case 4: kind = .delete
        default: kind = .get
        }
        let index = history.count
        history.append(Operation(client: client, key: key, kind: kind, level: level, node: node, invoke: now))
        inFlight[client] = index
        let operation: ClusterNode.ClientOperation
        switch kind {
        case .put(let value, let ttl):
            operation = .put(
                key: Array(key.utf8), value: Array("v\(value)".utf8), ttl: ttl.map { .after($0) } ?? .never,
                consistency: level)
        case .delete:
            operation = .delete(key: Array(key.utf8), consistency: level)
        case .get:
            operation = .get(key: Array(key.utf8), consistency: level)
        }
        trace.record(.client(node: node, key: Array(key.utf8)), at: now) { "client \(client) → n\(node): \(operation)" }
        step(node, .client(request: UInt64(index + 1), operation))
        // The coordinator answers within its request timeout unless it crashed.
        queue.push(.giveUp(client: client, operation: index), at: now + configuration.requestTimeout.nanoseconds * 3)
    }

    private mutating func completed(_ reply: ClusterNode.ClientReply, at node: Int) {
        let index = Int(reply.request) - 1
        guard history.indices.contains(index), history[index].outcome == .pending else { return }
        trace.record(.reply(operation: index), at: now) { "reply to op \(index): \(reply.outcome)" }
        history[index].complete = now
        history[index].replicas = reply.replicas
        history[index].hinted = reply.hinted
        switch reply.outcome {
        case .found(let entry):
            history[index].outcome = .ok
            history[index].read = Int(String(decoding: (entry.value ?? []).dropFirst(), as: UTF8.self))
            history[index].version = entry.version
            if let expiresAt = entry.expiresAt, expiresAt <= localTime(of: node) {
                violations.append("expiry: n\(node) served \(history[index].key) after it expired")
            }
        case .notFound:
            history[index].outcome = .ok
        case .stored(let version, let expiresAt):
            history[index].outcome = .ok
            history[index].version = version
            history[index].expiresAt = expiresAt
        case .deleted(_, let version):
            history[index].outcome = .ok
            history[index].version = version
        case .refused(let reason) where SimulatedDisk.isDiskReason(reason):
            history[index].outcome = .failed
            writesRefusedForDisk += 1
        case .unavailable, .refused, .overloaded, .invalid, .notReady:
            history[index].outcome = .failed
        }
        let client = history[index].client
        if inFlight[client] == index {
            inFlight[client] = nil
            queue.push(
                .client(client),
                at: now + SimulatedTime.clientPause + Int64(workload.below(Int(SimulatedTime.clientPauseSpread))))
        }
    }

    // MARK: Checkers

    private mutating func checkIncarnations() {
        for index in nodes.indices {
            guard let state = nodes[index].runtime?.node else { continue }
            if state.membership.incarnation < nodes[index].incarnation {
                violations.append(
                    "n\(index)'s incarnation went down from \(nodes[index].incarnation) to \(state.membership.incarnation)"
                )
            }
        }
    }

    /// The node whose clock runs past the bound, with its time, if the run has one and it runs.
    private var tombstoneKeeper: (index: Int, localTime: Instant)? {
        guard swarm.fastClock, let index = nodes.indices.last, nodes[index].isRunning else { return nil }
        return (index, localTime(of: index))
    }

    /// After a quiet grace period every tombstone older than the grace is collected everywhere, and
    /// the cluster is still converged.
    private mutating func checkCollection() {
        finished = true
        if let reason = ConvergenceChecker.divergence(
            nodes, departed: departed, allowsMissingReplicas: swarm.maximumEntries != nil,
            keepsTombstones: tombstoneKeeper)
        {
            violations.append("convergence: diverged again while idle: \(reason)")
            return
        }
        // The slowest clock decides: the key's first replica may be the node whose clock is behind.
        let present = nodes.indices.filter { !departed.contains($0) }
        let slowest = present.map { localTime(of: $0) }.min()!
        // A node whose clock runs past the bound never collects on its own clock: a tombstone the
        // others no longer hold (it alone replicates the key, or their `forget` was lost on the
        // way) stays there, memory and not a lost write, until its clock is set right.
        let keeper = tombstoneKeeper
        for index in present {
            let node = nodes[index].runtime!.node
            let local = localTime(of: index)
            for key in node.store.sortedKeys {
                guard let entry = node.store.entry(for: key), !entry.isLive(at: local) else { continue }
                if index == keeper?.index,
                    ConvergenceChecker.isKeptTombstone(key, nodes: nodes, present: present, keeper: keeper)
                {
                    continue
                }
                if entry.deadSince.advanced(byNanoseconds: collectionWait - SimulatedTime.second) < slowest {
                    violations.append("collection: n\(index) still holds the tombstone of \(key)@\(entry.version)")
                }
            }
        }
    }

    /// Whether some node evicted `key` at or after `time`.
    private func evicted(_ key: String, since time: Int64) -> Bool {
        let cacheKey = CacheKey(key)
        return nodes.contains { ($0.evictions[cacheKey] ?? .min) >= time }
    }

    private mutating func checkHistory() {
        let reference = nodes.first { $0.isRunning }!.runtime!.node
        var expiryOfVersion: [Version: Instant?] = [:]
        for operation in history where operation.outcome == .ok {
            if case .put = operation.kind, let version = operation.version {
                expiryOfVersion[version] = .some(operation.expiresAt)
            }
        }
        for key in Self.linearizableKeys + Self.eventualKeys + Self.expiringKeys {
            let bytes = Array(key.utf8)
            let owners = reference.replicas(of: bytes)
            // The newest version any replica holds; a key with no entry at all had its tombstone
            // collected: it stands for that tombstone.
            let held = nodes.filter { owners.contains($0.id) }.compactMap {
                $0.runtime!.node.store.entry(for: CacheKey(bytes: bytes))?.version
            }
            let final = held.max() ?? collected[CacheKey(bytes: bytes)]
            let acknowledged = history.filter { $0.key == key && $0.outcome == .ok && $0.version != nil }
            // Durability: the converged version is at least every acknowledged write's, unless the key
            // was evicted since the write began (a cache may give a value up; docs/replication.md).
            for operation in acknowledged {
                switch operation.kind {
                case .put, .delete:
                    guard let version = operation.version else { continue }
                    // A write one replica acknowledged may have lived on the forgotten node alone.
                    if forgot, operation.level.required(of: swarm.replicationFactor) <= 1 { continue }
                    if final.map({ $0 < version }) ?? true, !evicted(key, since: operation.invoke) {
                        violations.append(
                            "lost write: \(key) converged to \(final?.description ?? "nothing") but "
                                + "\(operation.kind) at \(operation.level) was acknowledged with \(version)")
                    }
                case .get:
                    break
                }
            }
            // TTL never extended: every replica of a version holds the expiry its write was given.
            for node in nodes {
                guard let entry = node.runtime?.node.store.entry(for: CacheKey(bytes: bytes)),
                    let expected = expiryOfVersion[entry.version]
                else { continue }
                if entry.expiresAt != expected {
                    violations.append(
                        "ttl: \(node.id) holds \(key)@\(entry.version) expiring at \(String(describing: entry.expiresAt)), written with \(String(describing: expected))"
                    )
                }
            }
        }
        // Linearizability of keys whose replica set never changed and that no node evicted (stand-ins
        // never count towards a level, so a write they took is checked like any other).
        for key in Self.linearizableKeys {
            // A failed or abandoned write may still have taken effect; a failed read says nothing.
            let operations = history.filter { operation in
                guard operation.key == key else { return false }
                if case .get = operation.kind { return operation.outcome == .ok }
                return true
            }
            let replicaSets = Set(operations.filter { $0.outcome == .ok }.map { $0.replicas.map(\.rawValue) })
            guard replicaSets.count <= 1, !evicted(key, since: 0) else {
                continue
            }
            let register = operations.map { operation -> RegisterOperation in
                let complete = operation.outcome == .ok ? operation.complete : .max
                switch operation.kind {
                case .put(let value, _):
                    return RegisterOperation(invoke: operation.invoke, complete: complete, kind: .write(value))
                case .delete:
                    return RegisterOperation(invoke: operation.invoke, complete: complete, kind: .write(nil))
                case .get:
                    return RegisterOperation(invoke: operation.invoke, complete: complete, kind: .read(operation.read))
                }
            }
            switch LinearizabilityChecker.check(register) {
            case .linearizable:
                linearizabilityChecked += 1
            case .violation:
                violations.append(
                    "linearizability: the history of \(key) has no legal order (\(register.count) operations)")
                trace.show(historyLines(of: key))
            case .undecided:
                break
            }
        }
    }

    private func historyLines(of key: String) -> [String] {
        history.filter { $0.key == key }.map { operation in
            let complete = operation.complete == .max ? "?" : "\(Double(operation.complete) / 1e9)"
            let read = operation.read.map { "v\($0)" } ?? "absent"
            let detail: String
            switch operation.kind {
            case .put(let value, _): detail = "put v\(value)"
            case .delete: detail = "delete"
            case .get: detail = "get → \(operation.outcome == .ok ? read : "-")"
            }
            return
                "\(Double(operation.invoke) / 1e9)–\(complete)s c\(operation.client) via n\(operation.node) \(operation.level) \(detail) \(operation.outcome) \(operation.version?.description ?? "")"
        }
    }
}

/// One node's outbound link to a peer in a run: the state machine the server runs, the frames
/// waiting for its connection, and which life of the peer the connection reached.
struct SimulatedLink {
    var machine = PeerLinkStateMachine()
    var queue: [(message: PeerMessage, bytes: Int)] = []
    var peerGeneration: Int?
}
