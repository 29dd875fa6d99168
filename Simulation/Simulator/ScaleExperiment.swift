import CacheCore

/// What a scale run measured, in protocol periods and messages.
public struct ScaleResult: Sendable, CustomStringConvertible {
    public var nodes: Int
    /// Periods until every member saw a newly joined node alive.
    public var joinPeriods: Int?
    /// Periods from a crash until every other member held the crashed node dead.
    public var crashPeriods: Int?
    /// Messages each node sent per protocol period in the steady state.
    public var messagesPerNodePerPeriod: Double
    public var events: Int

    public var description: String {
        "nodes=\(nodes) join→all-alive \(joinPeriods.map(String.init) ?? "not reached") periods, "
            + "crash→all-dead \(crashPeriods.map(String.init) ?? "not reached") periods, "
            + "\((messagesPerNodePerPeriod * 100).rounded() / 100) messages/node/period, \(events) events"
    }
}

/// Membership at scale on a calm network (1 ms per message, no faults): how fast a join and a
/// crash spread, and what the protocol costs each node per period. The numbers to set against SWIM's
/// O(log N) dissemination and constant per-node load.
public struct ScaleExperiment {
    private enum Event {
        case deliver(to: Int, frame: [UInt8])
        case tick(node: Int)
    }

    private let configuration = Membership.Configuration(
        protocolPeriod: SimulatedTime.protocolPeriod, probeTimeout: SimulatedTime.probeTimeout,
        suspicionTimeout: SimulatedTime.suspicionTimeout)
    private let origin = SimulatedTime.origin
    private var random: SplitMix64
    private var queue = EventQueue<Event>()
    private var members: [Membership?] = []
    private var addresses: [String] = []
    private var scheduled: [Instant?] = []
    /// Simulation time, from `SimulatedTime.start`; the members' clocks read `local`.
    private var now = SimulatedTime.start
    private var sent = 0
    private var events = 0

    public init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// Runs with `nodes` members: bootstrap, steady state, a join, then a crash.
    public mutating func run(nodes: Int, maximumPeriods: Int = 100) -> ScaleResult {
        for index in 0...nodes {  // index `nodes` is the one that joins later
            addresses.append("10.\(index / 65536).\(index / 256 % 256).\(index % 256):7000")
            members.append(nil)
            scheduled.append(nil)
        }
        // Bootstrap: every member starts knowing every other, through the real `state` message.
        let everyone = (0..<nodes).map {
            MemberUpdate(id: NodeID("n\($0)"), address: addresses[$0], incarnation: 0, status: .alive)
        }
        for index in 0..<nodes {
            members[index] = Membership(
                me: NodeID("n\(index)"), address: addresses[index], configuration: configuration, seed: random.next(),
                now: origin)
            let state = MembershipMessage(
                sender: everyone[0].id, senderAddress: everyone[0].address, senderIncarnation: 0, updates: [],
                body: .state(nonce: 0, everyone))
            if index != 0 { _ = members[index]!.received(state, now: origin) }
        }
        _ = members[0]!.received(
            MembershipMessage(
                sender: everyone[1].id, senderAddress: everyone[1].address, senderIncarnation: 0, updates: [],
                body: .state(nonce: 0, everyone)), now: origin)
        for index in 0..<nodes { schedule(index) }

        // Steady state: the cost per node per period.
        let period = SimulatedTime.protocolPeriod
        advance(until: SimulatedTime.start + period * 10)
        sent = 0
        advance(until: SimulatedTime.start + period * 20)
        let perNode = Double(sent) / Double(nodes) / 10

        // A join through one seed.
        members[nodes] = Membership(
            me: NodeID("n\(nodes)"), address: addresses[nodes], configuration: configuration, seed: random.next(),
            now: local)
        carryOut(members[nodes]!.join(seeds: [addresses[0]], now: local), from: nodes)
        let joinedAt = now
        var joinPeriods: Int?
        while joinPeriods == nil, now < joinedAt + period * maximumPeriods {
            advance(until: now + period)
            if (0..<nodes).allSatisfy({ members[$0]!.status(of: NodeID("n\(nodes)")) == .alive }) {
                joinPeriods = Int((now - joinedAt).nanoseconds / period.nanoseconds)
            }
        }

        // A crash of a random member.
        let victim = random.below(nodes)
        members[victim] = nil
        scheduled[victim] = nil
        let crashedAt = now
        var crashPeriods: Int?
        while crashPeriods == nil, now < crashedAt + period * maximumPeriods {
            advance(until: now + period)
            let others = (0...nodes).filter { $0 != victim }
            if others.allSatisfy({ members[$0]!.status(of: NodeID("n\(victim)")) == .dead }) {
                crashPeriods = Int((now - crashedAt).nanoseconds / period.nanoseconds)
            }
        }
        return ScaleResult(
            nodes: nodes, joinPeriods: joinPeriods, crashPeriods: crashPeriods, messagesPerNodePerPeriod: perNode,
            events: events)
    }

    /// What the members' clocks read now.
    private var local: Instant { origin.advanced(by: now - SimulatedTime.start) }

    private mutating func advance(until end: Instant) {
        while let (time, event) = queue.pop() {
            if time > end {
                queue.push(event, at: time)
                break
            }
            now = time
            events += 1
            switch event {
            case .deliver(let to, let frame):
                guard members[to] != nil, case .frame(.membership(let message), _) = PeerProtocol.decode(frame) else {
                    continue
                }
                carryOut(members[to]!.received(message, now: local), from: to)
            case .tick(let index):
                guard scheduled[index] == now, members[index] != nil else { continue }
                scheduled[index] = nil
                carryOut(members[index]!.tick(now: local), from: index)
            }
        }
        now = max(now, end)
    }

    private mutating func carryOut(_ effects: [MembershipEffect], from index: Int) {
        for effect in effects {
            guard case .send(let address, let message) = effect else { continue }
            sent += 1
            guard let to = Self.index(of: address) else { continue }
            queue.push(.deliver(to: to, frame: PeerProtocol.encode(.membership(message))), at: now + .milliseconds(1))
        }
        schedule(index)
    }

    private mutating func schedule(_ index: Int) {
        guard let membership = members[index] else { return }
        let at = now + .nanoseconds(max(1, local.nanoseconds(to: membership.nextDeadline)))
        if let current = scheduled[index], current > now, current <= at { return }
        scheduled[index] = at
        queue.push(.tick(node: index), at: at)
    }

    /// The member index an address names (`10.a.b.c:7000` → a·65536 + b·256 + c).
    private static func index(of address: String) -> Int? {
        let parts = address.split(separator: ":")[0].split(separator: ".").compactMap { Int($0) }
        guard parts.count == 4 else { return nil }
        return parts[1] * 65536 + parts[2] * 256 + parts[3]
    }
}
