import CacheCore

/// Runs whole nodes (`ClusterNode`: membership, ring, replication, log) in one process under one
/// seed, with clients issuing puts, gets and deletes at every consistency level, and checks the
/// replication guarantees over the recorded history.
///
/// Faults as in `MembershipSimulation` (drops, duplicates, reordering, partitions, crashes, clock
/// drift), plus disks: a crash loses every log byte not yet synced, except a random prefix of them,
/// which may end in a torn record; a restarted node recovers from what its disk holds through the
/// real WAL codec. After the safety phase everything heals, crashed nodes restart, and every key's
/// replicas must agree within a bound; then the checkers run.
public struct ClusterSimulation {
    public struct Options: Sendable {
        public var nodes = 5
        public var replicationFactor = 3
        public var clients = 4
        /// Simulated seconds with faults on and clients running.
        public var safetySeconds = 20
        /// Simulated seconds the liveness phase may take to converge.
        public var convergenceBoundSeconds = 60
        public var trace = false
        public var injectedBug: ClusterNode.Configuration.InjectedBug?

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
        case timer(node: Int)
        case diskSynced(node: Int, generation: Int)
        case client(Int)
        /// The client stops waiting for operation `operation` if it is still in flight.
        case giveUp(client: Int, operation: Int)
        case fault
        case restart(node: Int)
        case heal
        case livenessCheck
        /// A grace period after converging: tombstones must have been collected, nothing diverged.
        case collectionCheck
    }

    private struct Disk {
        var durable: [UInt8] = []
        var pending: [UInt8] = []
        var pendingUpTo: UInt64 = 0
        var syncing = false
    }

    private struct Node {
        let id: NodeID
        let address: String
        var state: ClusterNode?
        var disk = Disk()
        /// The newest version of each key on the disk's synced bytes.
        var durable: [CacheKey: Version] = [:]
        /// Replica writes this node received, by request: what it will acknowledge.
        /// `collected`: the write is a tombstone past its grace period, which a replica that holds
        /// nothing for the key confirms without storing.
        var writesReceived: [UInt64: (key: CacheKey, version: Version, collected: Bool)] = [:]
        var drift: Double
        var offset: Int64
        var timerAt: Int64?
        /// Bumped at every crash, so that a disk sync started before it completes into nothing.
        var generation = 0
    }

    /// One client operation and how it ended.
    struct Operation {
        enum Kind {
            case put(value: Int, ttl: Int64?)
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

    private struct Client {
        /// The operation in flight, by index into the history.
        var inFlight: Int?
    }

    private let seed: UInt64
    private let options: Options
    private let swarm: SwarmConfiguration
    private let configuration: ClusterNode.Configuration
    private var random: SplitMix64
    private var faults: SplitMix64
    private var workload: SplitMix64
    private var queue = EventQueue<Event>()
    private var nodes: [Node] = []
    private var clients: [Client] = []
    private var history: [Operation] = []
    private var requestOwners: [UInt64: Int] = [:]
    private var now: Int64 = 0
    private let origin = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
    private var group: [Int] = []
    private var oneWay: Set<[Int]> = []
    private var partitionHealsAt: Int64?
    private var faultsOn = true
    private var clientsOn = true
    private var livenessStart: Int64 = 0
    private var convergedAfter: Int64?
    private var finished = false
    /// The newest tombstone version collected per key (from the `forget` messages sent).
    private var collected: [CacheKey: Version] = [:]
    private var violations: [String] = []
    private var traceHash: UInt64 = 0
    private var events = 0
    private var recent: [String] = []
    private var fullTrace: [String] = []

    /// A run decided entirely by `seed`.
    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        let root = SplitMix64(seed: seed)
        var swarmRandom = root.derived(stream: 1)
        var swarm = SwarmConfiguration.draw(nodes: options.nodes, using: &swarmRandom)
        // A third of the runs keep membership steady (lossy network, no partitions or crashes), so
        // that replica sets stay put and the linearizability checker has whole histories to judge.
        var disk = root.derived(stream: 5)
        if disk.below(3) == 0 {
            swarm.partitionsPerSecond = 0
            swarm.crashesPerSecond = 0
        }
        swarm.maximumSyncLatency = Int64(100_000 + disk.below(disk.below(2) == 0 ? 2_000_000 : 40_000_000))
        swarm.powerLossesPerSecond = swarm.crashesPerSecond > 0 && disk.below(2) == 0 ? disk.nextUnit() * 0.1 : 0
        self.swarm = swarm
        random = root.derived(stream: 2)
        faults = root.derived(stream: 3)
        workload = root.derived(stream: 4)
        var configuration = ClusterNode.Configuration()
        configuration.replicationFactor = options.replicationFactor
        configuration.membership = Membership.Configuration(
            protocolPeriod: 200_000_000, probeTimeout: 80_000_000, suspicionTimeout: 1_000_000_000)
        configuration.injectedBug = options.injectedBug
        // Longer than any node stays down in a run (at most 5.5 s), so collection happens within
        // runs yet never while a replica that missed a delete is away.
        configuration.tombstoneGrace = 8_000_000_000
        self.configuration = configuration
    }

    /// Runs both phases and every checker.
    public mutating func run() -> SimulationResult {
        group = Array(repeating: 0, count: options.nodes)
        for index in 0..<options.nodes {
            let drift = (random.nextUnit() * 2 - 1) * swarm.maximumClockDrift
            nodes.append(
                Node(
                    id: NodeID("n\(index)"), address: "10.0.0.\(index):7000", drift: drift,
                    offset: Int64(random.below(50_000_000))))
        }
        for index in 0..<options.nodes { start(index) }
        clients = Array(repeating: Client(), count: options.clients)
        for client in 0..<options.clients { queue.push(.client(client), at: 500_000_000 + Int64(client)) }
        queue.push(.fault, at: 100_000_000)
        let safetyEnd = Int64(options.safetySeconds) * 1_000_000_000
        let deadline = safetyEnd + Int64(options.convergenceBoundSeconds) * 1_000_000_000
        queue.push(.heal, at: safetyEnd)
        let collectionBound = deadline + collectionWait
        while let (time, event) = queue.pop(), time <= collectionBound, !finished, violations.count < 5 {
            now = time
            events += 1
            handle(event)
        }
        if convergedAfter == nil, violations.isEmpty {
            violations.append(
                "convergence: not reached within \(options.convergenceBoundSeconds) s of healing: \(divergence() ?? "converged too late")"
            )
        }
        if violations.isEmpty { checkHistory() }
        let converged = convergedAfter.map { Int(($0 - livenessStart) / 200_000_000) }
        return SimulationResult(
            seed: seed, swarm: swarm, traceHash: traceHash, events: events, convergencePeriods: converged,
            violations: violations, lastEvents: options.trace ? fullTrace : recent,
            operations: history.count, linearizabilityChecked: linearizabilityChecked,
            replayFlags: options.injectedBug.map { " --inject-bug \($0.rawValue)" } ?? "")
    }

    private var linearizabilityChecked = 0

    /// How long the idle period after convergence lasts: a tombstone older than the grace period is
    /// collected by its first replica, or by any other a quarter of the grace later, plus time to
    /// finish.
    private var collectionWait: Int64 { configuration.tombstoneGrace * 5 / 4 + 3_000_000_000 }

    // MARK: Events

    private mutating func handle(_ event: Event) {
        switch event {
        case .deliver(let to, let frame):
            record(kind: 1, node: to, detail: frame) { "deliver to n\(to): \(Self.summary(frame))" }
            guard nodes[to].state != nil else { return }
            guard case .frame(let message, let next) = PeerProtocol.decode(frame), next == frame.count else {
                violations.append("codec: a frame the encoder wrote did not decode")
                return
            }
            if case .replication(let replication) = message,
                case .write(let request, let key, let entry, _) = replication.body
            {
                let collected =
                    !entry.isLive(at: localTime(of: to))
                    && entry.deadSince.advanced(byNanoseconds: configuration.tombstoneGrace)
                        <= localTime(of: to)
                nodes[to].writesReceived[request] = (CacheKey(bytes: key), entry.version, collected)
            }
            step(to, .peer(message))
        case .timer(let index):
            guard nodes[index].timerAt == now, nodes[index].state != nil else { return }
            nodes[index].timerAt = nil
            record(kind: 2, node: index, detail: []) { "timer n\(index)" }
            step(index, .timer)
        case .diskSynced(let index, let generation):
            guard generation == nodes[index].generation, nodes[index].state != nil else { return }
            let upTo = nodes[index].disk.pendingUpTo
            record(kind: 7, node: index, detail: []) { "n\(index) log durable up to \(upTo)" }
            noteDurable(nodes[index].disk.pending, at: index)
            nodes[index].disk.durable.append(contentsOf: nodes[index].disk.pending)
            nodes[index].disk.pending = []
            nodes[index].disk.syncing = false
            step(index, .logWritten(upTo: upTo))
            step(index, .logSynced(upTo: upTo))
        case .client(let client):
            clientStep(client)
        case .giveUp(let client, let operation):
            guard clients[client].inFlight == operation else { return }
            record(kind: 10, node: 0, detail: []) { "client \(client) gives up on op \(operation)" }
            history[operation].outcome = .unknown
            clients[client].inFlight = nil
            clientStep(client)
        case .fault:
            record(kind: 3, node: 0, detail: []) { "fault step" }
            injectFaults()
            if faultsOn { queue.push(.fault, at: now + 100_000_000) }
        case .restart(let index):
            record(kind: 4, node: index, detail: []) { "restart n\(index)" }
            if nodes[index].state == nil { start(index) }
        case .heal:
            record(kind: 5, node: 0, detail: []) { "liveness phase: heal, restart, stop clients" }
            faultsOn = false
            clientsOn = false
            group = Array(repeating: 0, count: options.nodes)
            oneWay = []
            partitionHealsAt = nil
            livenessStart = now
            for index in 0..<options.nodes where nodes[index].state == nil { start(index) }
            queue.push(.livenessCheck, at: now + 200_000_000)
        case .collectionCheck:
            record(kind: 11, node: 0, detail: []) { "collection check" }
            checkCollection()
        case .livenessCheck:
            if divergence() == nil {
                convergedAfter = now
                queue.push(.collectionCheck, at: now + collectionWait)
            } else if now >= Int64(options.safetySeconds + options.convergenceBoundSeconds) * 1_000_000_000 {
                finished = true
            } else {
                queue.push(.livenessCheck, at: now + 200_000_000)
            }
        }
    }

    /// Hands `input` to node `index` and carries out its effects.
    private mutating func step(_ index: Int, _ input: ClusterNode.Input) {
        guard nodes[index].state != nil else { return }
        let effects = nodes[index].state!.handle(input, now: localTime(of: index))
        carryOut(effects, from: index)
    }

    private mutating func carryOut(_ effects: [ClusterNode.Effect], from index: Int) {
        for effect in effects {
            switch effect {
            case .send(let address, let message):
                checkAcknowledgment(message, from: index)
                if case .replication(let replication) = message, case .forget(let key, let version) = replication.body {
                    let cacheKey = CacheKey(bytes: key)
                    collected[cacheKey] = max(collected[cacheKey] ?? version, version)
                }
                guard let to = nodes.firstIndex(where: { $0.address == address }) else { continue }
                let frame = PeerProtocol.encode(message)
                if faultsOn, random.nextUnit() < swarm.dropRate { continue }
                guard group[index] == group[to], !oneWay.contains([index, to]) else { continue }
                queue.push(.deliver(to: to, frame: frame), at: now + latency())
                if faultsOn, random.nextUnit() < swarm.duplicateRate {
                    queue.push(.deliver(to: to, frame: frame), at: now + latency())
                }
            case .append(let sequence, let bytes):
                nodes[index].disk.pending.append(contentsOf: bytes)
                nodes[index].disk.pendingUpTo = sequence
                if !nodes[index].disk.syncing {
                    nodes[index].disk.syncing = true
                    queue.push(
                        .diskSynced(node: index, generation: nodes[index].generation),
                        at: now + 50_000 + Int64(random.below(Int(swarm.maximumSyncLatency))))
                }
            case .reply(let reply):
                completed(reply, at: index)
            case .setTimer(let at):
                scheduleTimer(index, at: at)
            case .memberStatusChanged:
                break
            }
        }
    }

    private mutating func scheduleTimer(_ index: Int, at deadline: Instant) {
        let wait = max(1, localTime(of: index).nanoseconds(to: deadline))
        let at = now + max(1, Int64(Double(wait) / (1 + nodes[index].drift)))
        nodes[index].timerAt = at
        queue.push(.timer(node: index), at: at)
    }

    private mutating func latency() -> Int64 {
        swarm.minimumLatency + Int64(random.below(Int(swarm.maximumLatency - swarm.minimumLatency) + 1))
    }

    private func localTime(of index: Int) -> Instant {
        origin.advanced(byNanoseconds: nodes[index].offset + Int64(Double(now) * (1 + nodes[index].drift)))
    }

    // MARK: Nodes, faults and disks

    private mutating func start(_ index: Int) {
        // Recover from the disk through the real codec; cut it back to its last whole record.
        var records: [WALRecord] = []
        var offset = 0
        let bytes = nodes[index].disk.durable
        bytes.withUnsafeBytes { raw in
            while case .record(let record, let next) = WALFormat.decode(raw, at: offset) {
                records.append(record)
                offset = next
            }
        }
        nodes[index].disk = Disk(durable: Array(bytes.prefix(offset)))
        nodes[index].durable = [:]
        nodes[index].writesReceived = [:]
        noteDurable(nodes[index].disk.durable, at: index)
        var node = ClusterNode(
            me: nodes[index].id, address: nodes[index].address, configuration: configuration, seed: random.next(),
            recovered: records, logPolicy: .always, now: localTime(of: index))
        let seeds = (0..<options.nodes).filter { $0 != index }.map { nodes[$0].address }
        let effects = node.start(seeds: Array(seeds.prefix(3)), now: localTime(of: index))
        nodes[index].state = node
        carryOut(effects, from: index)
    }

    private mutating func crash(_ index: Int) {
        record(kind: 6, node: index, detail: []) { "crash n\(index)" }
        nodes[index].state = nil
        nodes[index].timerAt = nil
        nodes[index].generation += 1
        // Unsynced bytes are lost, except a random prefix that reached the platter (possibly torn).
        let pending = nodes[index].disk.pending
        let kept = pending.isEmpty ? 0 : faults.below(pending.count + 1)
        nodes[index].disk.durable.append(contentsOf: pending.prefix(kept))
        nodes[index].disk.pending = []
        nodes[index].disk.syncing = false
    }

    private mutating func injectFaults() {
        guard faultsOn else { return }
        if let healsAt = partitionHealsAt, now >= healsAt {
            group = Array(repeating: 0, count: options.nodes)
            oneWay = []
            partitionHealsAt = nil
        }
        let step = 0.1
        if faults.nextUnit() < swarm.partitionsPerSecond * step {
            switch faults.below(3) {
            case 0:
                group = (0..<options.nodes).map { _ in faults.below(2) }
            case 1:
                let isolated = faults.below(options.nodes)
                group = (0..<options.nodes).map { $0 == isolated ? 1 : 0 }
            default:
                let a = faults.below(options.nodes)
                let b = faults.below(options.nodes)
                if a != b { oneWay.insert([a, b]) }
            }
            partitionHealsAt = now + Int64(500_000_000 + faults.below(3_000_000_000))
        }
        if faults.nextUnit() < swarm.powerLossesPerSecond * step {
            for index in 0..<options.nodes where nodes[index].state != nil {
                crash(index)
                queue.push(.restart(node: index), at: now + Int64(300_000_000 + faults.below(2_000_000_000)))
            }
        }
        if faults.nextUnit() < swarm.crashesPerSecond * step {
            let index = faults.below(options.nodes)
            if nodes[index].state != nil {
                crash(index)
                queue.push(.restart(node: index), at: now + Int64(500_000_000 + faults.below(5_000_000_000)))
            }
        }
    }

    /// Records the versions in `bytes` (whole log records) as durable on node `index`.
    private mutating func noteDurable(_ bytes: [UInt8], at index: Int) {
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while case .record(let record, let next) = WALFormat.decode(raw, at: offset) {
                if case .versioned(let key, let entry) = record.operation {
                    let cacheKey = CacheKey(bytes: key)
                    nodes[index].durable[cacheKey] = max(nodes[index].durable[cacheKey] ?? entry.version, entry.version)
                }
                offset = next
            }
        }
    }

    /// A replica says it stores a write only once the write (or a newer one) is on its synced log.
    private mutating func checkAcknowledgment(_ message: PeerMessage, from index: Int) {
        guard case .replication(let replication) = message,
            case .writeReply(let request, .stored) = replication.body,
            let write = nodes[index].writesReceived[request]
        else { return }
        if write.collected, nodes[index].state?.store.entry(for: write.key) == nil { return }
        if nodes[index].durable[write.key].map({ $0 < write.version }) ?? true {
            violations.append(
                "durability: n\(index) acknowledged \(write.key)@\(write.version) before it was on its synced log")
        }
    }

    // MARK: Clients

    private mutating func clientStep(_ client: Int) {
        guard clientsOn, clients[client].inFlight == nil else { return }
        let live = (0..<options.nodes).filter { nodes[$0].state != nil }
        guard !live.isEmpty else {
            queue.push(.client(client), at: now + 100_000_000)
            return
        }
        let node = live[workload.below(live.count)]
        let family = workload.below(10)
        let key: String
        var levels: [ConsistencyLevel] = [.quorum, .all]
        var ttl: Int64?
        if family < 6 {
            key = Self.linearizableKeys[workload.below(Self.linearizableKeys.count)]
        } else if family < 8 {
            key = Self.eventualKeys[workload.below(Self.eventualKeys.count)]
            levels = ConsistencyLevel.allCases
        } else {
            key = Self.expiringKeys[workload.below(Self.expiringKeys.count)]
            levels = [.quorum]
            ttl = Int64(200_000_000 + workload.below(2_000_000_000))
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
        clients[client].inFlight = index
        let request = UInt64(index + 1)
        requestOwners[request] = client
        let operation: ClusterNode.ClientOperation
        switch kind {
        case .put(let value, let ttl):
            operation = .put(key: Array(key.utf8), value: Array("v\(value)".utf8), ttl: ttl, consistency: level)
        case .delete:
            operation = .delete(key: Array(key.utf8), consistency: level)
        case .get:
            operation = .get(key: Array(key.utf8), consistency: level)
        }
        record(kind: 8, node: node, detail: Array(key.utf8)) { "client \(client) → n\(node): \(operation)" }
        step(node, .client(request: request, operation))
        // The coordinator answers within its request timeout unless it crashed.
        queue.push(.giveUp(client: client, operation: index), at: now + configuration.requestTimeout * 3)
    }

    private mutating func completed(_ reply: ClusterNode.ClientReply, at node: Int) {
        let index = Int(reply.request) - 1
        guard history.indices.contains(index), history[index].outcome == .pending else { return }
        record(kind: 9, node: node, detail: []) { "reply to op \(index): \(reply.outcome)" }
        history[index].complete = now
        history[index].replicas = reply.replicas
        history[index].hinted = reply.hinted
        switch reply.outcome {
        case .found(let value, let version, let expiresAt):
            history[index].outcome = .ok
            history[index].read = Int(String(decoding: value.dropFirst(), as: UTF8.self))
            history[index].version = version
            if let expiresAt, expiresAt <= localTime(of: node) {
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
        case .unavailable:
            history[index].outcome = .failed
        }
        let client = history[index].client
        if clients[client].inFlight == index {
            clients[client].inFlight = nil
            queue.push(.client(client), at: now + 5_000_000 + Int64(workload.below(100_000_000)))
        }
    }

    // MARK: Checkers

    /// After a quiet grace period every tombstone older than the grace is collected everywhere, and
    /// the cluster is still converged.
    private mutating func checkCollection() {
        finished = true
        if let reason = divergence() {
            violations.append("convergence: diverged again while idle: \(reason)")
            return
        }
        let horizon = Instant(nanosecondsSinceEpoch: .max)
        // The slowest clock decides: the key's first replica may be the node whose clock is behind.
        let slowest = nodes.indices.map { localTime(of: $0) }.min()!
        for index in nodes.indices {
            let node = nodes[index].state!
            let local = localTime(of: index)
            for key in node.store.sortedKeys {
                guard let entry = node.store.entry(for: key), !entry.isLive(at: local) else { continue }
                let deadSince =
                    entry.value == nil ? Instant(nanosecondsSinceEpoch: entry.version.wall) : entry.expiresAt ?? horizon
                if deadSince.advanced(byNanoseconds: collectionWait - 1_000_000_000) < slowest {
                    violations.append("collection: n\(index) still holds the tombstone of \(key)@\(entry.version)")
                }
            }
        }
    }

    /// Why the cluster has not converged yet, or `nil`: every node sees every node alive, and every
    /// key is held at the same version by each of its replicas and by no other node.
    private func divergence() -> String? {
        guard nodes.allSatisfy({ $0.state != nil }) else { return "a node is down" }
        let reference = nodes[0].state!
        for index in nodes.indices {
            let node = nodes[index].state!
            for other in nodes where node.membership.status(of: other.id) != .alive {
                return
                    "n\(index) sees \(other.id) as \(node.membership.status(of: other.id).map { "\($0)" } ?? "unknown")"
            }
            if node.ring.members != reference.ring.members { return "rings differ" }
        }
        var keys = Set<CacheKey>()
        for node in nodes { keys.formUnion(node.state!.store.sortedKeys) }
        for key in keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            let owners = reference.replicas(of: key.bytes)
            var versions: [Version?] = []
            for index in nodes.indices {
                let entry = nodes[index].state!.store.entry(for: key)
                if owners.contains(nodes[index].id) {
                    versions.append(entry?.version)
                } else if entry != nil {
                    return "n\(index) still holds \(key), which it does not own"
                }
            }
            if Set(versions.map { $0?.description ?? "none" }).count > 1 {
                return "replicas of \(key) disagree: \(versions.map { $0?.description ?? "none" })"
            }
        }
        return nil
    }

    private mutating func checkHistory() {
        let reference = nodes[0].state!
        var expiryOfVersion: [Version: Instant?] = [:]
        for operation in history where operation.outcome == .ok {
            if case .put = operation.kind, let version = operation.version {
                expiryOfVersion[version] = .some(operation.expiresAt)
            }
        }
        for key in Self.linearizableKeys + Self.eventualKeys + Self.expiringKeys {
            let bytes = Array(key.utf8)
            let owner = nodes.firstIndex { $0.id == reference.replicas(of: bytes).first }!
            // A key with no entry at all had its tombstone collected: it stands for that tombstone.
            let final =
                nodes[owner].state!.store.entry(for: CacheKey(bytes: bytes))?.version
                ?? collected[CacheKey(bytes: bytes)]
            let acknowledged = history.filter { $0.key == key && $0.outcome == .ok && $0.version != nil }
            // Durability: the converged version is at least every acknowledged write's.
            for operation in acknowledged {
                switch operation.kind {
                case .put, .delete:
                    guard let version = operation.version else { continue }
                    if final.map({ $0 < version }) ?? true {
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
                guard let entry = node.state!.store.entry(for: CacheKey(bytes: bytes)),
                    let expected = expiryOfVersion[entry.version]
                else { continue }
                if entry.expiresAt != expected {
                    violations.append(
                        "ttl: \(node.id) holds \(key)@\(entry.version) expiring at \(String(describing: entry.expiresAt)), written with \(String(describing: expected))"
                    )
                }
            }
        }
        // Linearizability of keys whose replica set never changed and that never used a stand-in.
        for key in Self.linearizableKeys {
            // A failed or abandoned write may still have taken effect; a failed read says nothing.
            let operations = history.filter { operation in
                guard operation.key == key else { return false }
                if case .get = operation.kind { return operation.outcome == .ok }
                return true
            }
            let replicaSets = Set(operations.filter { $0.outcome == .ok }.map { $0.replicas.map(\.rawValue) })
            guard replicaSets.count <= 1, !operations.contains(where: \.hinted) else { continue }
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
                recent = historyLines(of: key)
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

    // MARK: Trace

    private mutating func record(kind: UInt8, node: Int, detail: [UInt8], _ describe: () -> String) {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: traceHash) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: now) { bytes.append(contentsOf: $0) }
        bytes.append(kind)
        withUnsafeBytes(of: UInt32(node)) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: detail)
        traceHash = StableHash.xxh64(bytes)
        let line = "\(Double(now) / 1e9)s \(describe())"
        if options.trace { fullTrace.append(line) }
        recent.append(line)
        if recent.count > 40 { recent.removeFirst() }
    }

    private static func summary(_ frame: [UInt8]) -> String {
        guard case .frame(let message, _) = PeerProtocol.decode(frame) else { return "undecodable" }
        switch message {
        case .membership(let membership):
            return "\(membership.body) from \(membership.sender)"
        case .replication(let replication):
            switch replication.body {
            case .write(let request, let key, let entry, let repair):
                return
                    "write#\(request % 1000) \(String(decoding: key, as: UTF8.self))@\(entry.version)\(repair ? " repair" : "") from \(replication.sender)"
            case .writeReply(let request, let result):
                return "writeReply#\(request % 1000) \(result) from \(replication.sender)"
            case .read(let request, let key):
                return "read#\(request % 1000) \(String(decoding: key, as: UTF8.self)) from \(replication.sender)"
            case .readReply(let request, let entry):
                return "readReply#\(request % 1000) \(entry?.version.description ?? "none") from \(replication.sender)"
            case .digest(let buckets):
                return "digest \(buckets.count) buckets from \(replication.sender)"
            case .summary(let buckets, let versions):
                return "summary \(buckets.count) buckets \(versions.count) keys from \(replication.sender)"
            case .pull(let keys):
                return "pull \(keys.count) keys from \(replication.sender)"
            case .push(let items):
                return "push \(items.count) entries from \(replication.sender)"
            case .forget(let key, let version):
                return "forget \(String(decoding: key, as: UTF8.self))@\(version) from \(replication.sender)"
            }
        }
    }
}
