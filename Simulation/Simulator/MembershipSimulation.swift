import CacheCore

/// What one simulated run found.
public struct SimulationResult: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var swarm: SwarmConfiguration
    /// A hash of every event processed, in order: the same seed must give the same hash.
    public var traceHash: UInt64
    public var events: Int
    /// Protocol periods of the liveness phase until every live node agreed, if they did.
    public var convergencePeriods: Int?
    /// Broken guarantees, one line each; empty when the run passed.
    public var violations: [String]
    /// The last events before the end, readable, for a failure report.
    public var lastEvents: [String]
    /// Client operations issued (cluster runs).
    public var operations = 0
    /// Keys whose history the linearizability checker verified (cluster runs).
    public var linearizabilityChecked = 0
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
            text += "\n  replay: cache-sim --seed \(seed) --nodes \(swarm.nodes)\(replayFlags) --trace"
        }
        return text
    }
}

/// Runs nodes of the real CacheCore membership state machine in one process, under one seed.
///
/// A virtual clock and an event queue drive everything: message deliveries (through the real wire
/// codec, delayed, dropped, duplicated and reordered as the swarm configuration says), each node's
/// timer, partitions and their healing, crashes and restarts, and per-node clock drift. A run has
/// two phases. In the safety phase faults are on and invariants are checked after every event. In
/// the liveness phase every partition heals, crashed nodes restart, one node is crashed on purpose,
/// faults stop, and the live nodes must agree within a bound on who is alive (the restarted ones
/// too) and who is dead (the one just crashed), and so compute the same ring.
public struct MembershipSimulation {
    public struct Options: Sendable {
        public var nodes = 5
        /// Simulated seconds with faults on.
        public var safetySeconds = 30
        /// Protocol periods the liveness phase may take.
        public var convergenceBoundPeriods = 60
        /// Keep a readable line for every event (slower).
        public var trace = false
        public var injectedBug: Membership.Configuration.InjectedBug?

        public init() {}
    }

    private enum Event {
        case deliver(to: Int, frame: [UInt8])
        case tick(node: Int)
        case fault
        case restart(node: Int)
        case heal
        case livenessCheck
    }

    private struct Node {
        let id: NodeID
        let address: String
        var membership: Membership?
        var drift: Double
        var offset: Int64
        var scheduledTick: Int64?
        var restarts = 0
    }

    private let seed: UInt64
    private let options: Options
    private let swarm: SwarmConfiguration
    private let configuration = Membership.Configuration(
        protocolPeriod: 200_000_000, probeTimeout: 80_000_000, suspicionTimeout: 1_000_000_000)
    private var random: SplitMix64
    private var faults: SplitMix64
    private var queue = EventQueue<Event>()
    private var nodes: [Node] = []
    private var now: Int64 = 0
    private let origin = Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
    /// Partition group of each node; messages cross only within a group (and not along `oneWay`).
    private var group: [Int] = []
    private var oneWay: Set<[Int]> = []
    private var faultsOn = true
    private var victim: Int?
    private var livenessStart: Int64 = 0
    private var convergencePeriods: Int?
    private var violations: [String] = []
    private var traceHash: UInt64 = 0
    private var events = 0
    private var recent: [String] = []
    private var fullTrace: [String] = []
    private var incarnations: [UInt64] = []

    /// A run decided entirely by `seed`.
    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        var root = SplitMix64(seed: seed)
        var swarmRandom = root.derived(stream: 1)
        swarm = SwarmConfiguration.draw(nodes: options.nodes, using: &swarmRandom)
        random = root.derived(stream: 2)
        faults = root.derived(stream: 3)
        _ = root.next()
    }

    /// Runs both phases and the checkers; returns what was found.
    public mutating func run() -> SimulationResult {
        var configuration = self.configuration
        configuration.injectedBug = options.injectedBug
        group = Array(repeating: 0, count: options.nodes)
        incarnations = Array(repeating: 0, count: options.nodes)
        for index in 0..<options.nodes {
            let drift = (random.nextUnit() * 2 - 1) * swarm.maximumClockDrift
            nodes.append(
                Node(
                    id: NodeID("n\(index)"), address: "10.0.0.\(index):7000", membership: nil, drift: drift,
                    offset: Int64(random.below(2_000_000_000))))
        }
        for index in 0..<options.nodes { start(index, configuration: configuration) }
        queue.push(.fault, at: 100_000_000)
        let safetyEnd = Int64(options.safetySeconds) * 1_000_000_000
        let deadline = safetyEnd + Int64(options.convergenceBoundPeriods + 5) * configuration.protocolPeriod
        queue.push(.heal, at: safetyEnd)
        while let (time, event) = queue.pop(), time <= deadline, convergencePeriods == nil, violations.count < 5 {
            now = time
            events += 1
            handle(event, configuration: configuration)
        }
        if convergencePeriods == nil, violations.isEmpty {
            violations.append(
                "convergence: live nodes did not agree within \(options.convergenceBoundPeriods) periods: \(disagreement() ?? "agreed too late")"
            )
        }
        return SimulationResult(
            seed: seed, swarm: swarm, traceHash: traceHash, events: events, convergencePeriods: convergencePeriods,
            violations: violations, lastEvents: options.trace ? fullTrace : recent,
            replayFlags: " --membership-only" + (options.injectedBug.map { " --inject-bug \($0.rawValue)" } ?? ""))
    }

    // MARK: Events

    private mutating func handle(_ event: Event, configuration: Membership.Configuration) {
        switch event {
        case .deliver(let to, let frame):
            record(kind: 1, node: to, detail: frame) { "deliver to n\(to): \(Self.summary(frame))" }
            guard nodes[to].membership != nil else { return }
            guard case .frame(.membership(let message), let next) = PeerProtocol.decode(frame), next == frame.count
            else {
                violations.append("codec: a frame the encoder wrote did not decode")
                return
            }
            let effects = nodes[to].membership!.received(message, now: localTime(of: to))
            carryOut(effects, from: to)
        case .tick(let index):
            guard nodes[index].scheduledTick == now, nodes[index].membership != nil else { return }
            nodes[index].scheduledTick = nil
            record(kind: 2, node: index, detail: []) { "tick n\(index)" }
            let effects = nodes[index].membership!.tick(now: localTime(of: index))
            carryOut(effects, from: index)
        case .fault:
            record(kind: 3, node: 0, detail: []) { "fault step" }
            injectFaults(configuration: configuration)
            if faultsOn { queue.push(.fault, at: now + 100_000_000) }
        case .restart(let index):
            record(kind: 4, node: index, detail: []) { "restart n\(index)" }
            if nodes[index].membership == nil, index != victim { start(index, configuration: configuration) }
        case .heal:
            record(kind: 5, node: 0, detail: []) { "liveness phase: heal, restart, crash one" }
            faultsOn = false
            group = Array(repeating: 0, count: options.nodes)
            oneWay = []
            partitionHealsAt = nil
            livenessStart = now
            let live = (0..<options.nodes).filter { nodes[$0].membership != nil }
            if options.nodes >= 3, let chosen = live.randomElement(using: &random) {
                victim = chosen
                crash(chosen)
            }
            for index in 0..<options.nodes where nodes[index].membership == nil && index != victim {
                start(index, configuration: configuration)
            }
            queue.push(.livenessCheck, at: now + configuration.protocolPeriod)
        case .livenessCheck:
            if disagreement() == nil {
                convergencePeriods = Int((now - livenessStart) / configuration.protocolPeriod)
            } else {
                queue.push(.livenessCheck, at: now + configuration.protocolPeriod)
            }
        }
        checkInvariants()
    }

    private mutating func injectFaults(configuration: Membership.Configuration) {
        guard faultsOn else { return }
        if let healsAt = partitionHealsAt, now >= healsAt {
            group = Array(repeating: 0, count: options.nodes)
            oneWay = []
            partitionHealsAt = nil
        }
        let step = 0.1  // seconds per fault step
        if faults.nextUnit() < swarm.partitionsPerSecond * step {
            switch faults.below(3) {
            case 0:  // symmetric: two sides
                group = (0..<options.nodes).map { _ in faults.below(2) }
            case 1:  // isolate one node
                let isolated = faults.below(options.nodes)
                group = (0..<options.nodes).map { $0 == isolated ? 1 : 0 }
            default:  // one way: a hears b, b does not hear a
                let a = faults.below(options.nodes)
                let b = faults.below(options.nodes)
                if a != b { oneWay.insert([a, b]) }
            }
            partitionHealsAt = now + Int64(500_000_000 + faults.below(3_000_000_000))
        }
        if faults.nextUnit() < swarm.crashesPerSecond * step {
            let index = faults.below(options.nodes)
            if nodes[index].membership != nil {
                crash(index)
                queue.push(.restart(node: index), at: now + Int64(500_000_000 + faults.below(5_000_000_000)))
            }
        }
    }

    /// When the current partition heals (checked at every fault step).
    private var partitionHealsAt: Int64?

    private mutating func start(_ index: Int, configuration: Membership.Configuration) {
        var membership = Membership(
            me: nodes[index].id, address: nodes[index].address, configuration: configuration,
            seed: random.next(), now: localTime(of: index))
        let seeds = (0..<options.nodes).filter { $0 != index }.map { nodes[$0].address }
        let effects = membership.join(seeds: Array(seeds.prefix(3)), now: localTime(of: index))
        nodes[index].membership = membership
        incarnations[index] = 0
        carryOut(effects, from: index)
    }

    private mutating func crash(_ index: Int) {
        record(kind: 6, node: index, detail: []) { "crash n\(index)" }
        nodes[index].membership = nil
        nodes[index].scheduledTick = nil
        nodes[index].restarts += 1
    }

    private mutating func carryOut(_ effects: [MembershipEffect], from index: Int) {
        for effect in effects {
            guard case .send(let address, let message) = effect else { continue }
            guard let to = nodes.firstIndex(where: { $0.address == address }) else { continue }
            let frame = PeerProtocol.encode(.membership(message))
            if faultsOn, random.nextUnit() < swarm.dropRate { continue }
            guard group[index] == group[to], !oneWay.contains([index, to]) else { continue }
            queue.push(.deliver(to: to, frame: frame), at: now + latency())
            if faultsOn, random.nextUnit() < swarm.duplicateRate {
                queue.push(.deliver(to: to, frame: frame), at: now + latency())
            }
        }
        scheduleTick(index)
    }

    private mutating func latency() -> Int64 {
        swarm.minimumLatency + Int64(random.below(Int(swarm.maximumLatency - swarm.minimumLatency) + 1))
    }

    /// Schedules the node's timer at its next deadline, converted from its drifting clock.
    private mutating func scheduleTick(_ index: Int) {
        guard let membership = nodes[index].membership else { return }
        let localNow = localTime(of: index)
        let wait = max(1, localNow.nanoseconds(to: membership.nextDeadline))
        let at = now + max(1, Int64(Double(wait) / (1 + nodes[index].drift)))
        if let scheduled = nodes[index].scheduledTick, scheduled <= at, scheduled > now { return }
        nodes[index].scheduledTick = at
        queue.push(.tick(node: index), at: at)
    }

    private func localTime(of index: Int) -> Instant {
        origin.advanced(byNanoseconds: nodes[index].offset + Int64(Double(now) * (1 + nodes[index].drift)))
    }

    // MARK: Checkers

    /// Cheap invariants after every event: a node's own incarnation never goes down while it runs.
    private mutating func checkInvariants() {
        for index in 0..<options.nodes {
            guard let membership = nodes[index].membership else { continue }
            if membership.incarnation < incarnations[index] {
                violations.append(
                    "n\(index)'s incarnation went down from \(incarnations[index]) to \(membership.incarnation)")
            }
            incarnations[index] = membership.incarnation
        }
    }

    /// Why the live nodes do not yet agree, or `nil` when they do: every live node sees every
    /// other live node alive, sees the crashed victim dead, and computes the same ring.
    private func disagreement() -> String? {
        let live = (0..<options.nodes).filter { nodes[$0].membership != nil }
        var rings: [[NodeID]] = []
        for observer in live {
            let membership = nodes[observer].membership!
            for member in live where membership.status(of: nodes[member].id) != .alive {
                return
                    "n\(observer) sees n\(member) as \(membership.status(of: nodes[member].id).map { "\($0)" } ?? "unknown")"
            }
            if let victim, membership.status(of: nodes[victim].id) != .dead {
                return
                    "n\(observer) sees crashed n\(victim) as \(membership.status(of: nodes[victim].id).map { "\($0)" } ?? "unknown")"
            }
            rings.append(membership.keyOwners)
        }
        if Set(rings.map { $0.map(\.rawValue).joined(separator: ",") }).count > 1 { return "rings differ" }
        return nil
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
        guard case .frame(.membership(let message), _) = PeerProtocol.decode(frame) else { return "undecodable" }
        let updates = message.updates.map { "\($0.id)=\($0.status)@\($0.incarnation)" }.joined(separator: " ")
        return "\(message.body) from \(message.sender)@\(message.senderIncarnation) [\(updates)]"
    }

}
