import CacheCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `value` rounded to a multiple of 1/`scale` (two decimals by default), for the experiments' reports.
func decimal(_ value: Double, _ scale: Double = 100) -> String { "\((value * scale).rounded() / scale)" }

/// What a scale run measured, in protocol periods and messages.
public struct ScaleResult: Sendable, CustomStringConvertible {
    public var nodes: Int
    /// Periods until every member saw a newly joined node alive.
    public var joinPeriods: Int?
    /// Periods from a crash until every other member held the crashed node dead.
    public var crashPeriods: Int?
    /// Messages each node sent per protocol period in the steady state, and their bytes (frames).
    public var messagesPerNodePerPeriod: Double
    public var bytesPerNodePerPeriod: Double
    /// The full-state sync (`state`) a member sends every `syncEveryPeriods`: its bytes.
    public var stateSyncBytes: Int
    /// Memory one member's `Membership` holds with everyone in it (an estimate from resident memory;
    /// `nil` where it cannot be read), and one `HashRing` of every member (its arrays: 12 bytes a
    /// point, the members' names aside).
    public var membershipHeapBytes: Int?
    public var ringHeapBytes: Int
    /// Wall time to build the ring from scratch, and to rebuild it for one member more.
    public var ringBuildSeconds: Double
    public var ringRebuildSeconds: Double
    /// Share of the keys whose replica set (three replicas) changes when one member joins.
    public var keysMovedOnJoin: Double
    /// Anti-entropy for one member (`n0`, three replicas): how many peers it shares keys with, the
    /// digest table it keeps for them (1,024 buckets of 8 bytes each), and, holding
    /// `keyCopiesPerNode`, the bytes of the digest it sends each round (one peer a second) and that
    /// per key copy held: the ring's exact arcs, with keys at uniformly random positions.
    public var peersSharingKeys: Int
    public var digestTableBytes: Int
    public var keyCopiesPerNode: Int
    public var antiEntropyBytesPerNodePerSecond: Double
    public var antiEntropyBytesPerKeyPerSecond: Double
    public var events: Int

    public var description: String {
        return "nodes=\(nodes) join→all-alive \(joinPeriods.map(String.init) ?? "not reached") periods, "
            + "crash→all-dead \(crashPeriods.map(String.init) ?? "not reached") periods, "
            + "\(decimal(messagesPerNodePerPeriod)) messages/node/period (\(decimal(bytesPerNodePerPeriod, 1)) B), "
            + "full-state sync \(stateSyncBytes) B, membership heap \(membershipHeapBytes.map(String.init) ?? "?") B, "
            + "ring heap \(ringHeapBytes) B (build \(decimal(ringBuildSeconds * 1000, 10)) ms, "
            + "rebuild for one more \(decimal(ringRebuildSeconds * 1000, 10)) ms), a join moves "
            + "\(decimal(keysMovedOnJoin * 100, 10)) % of keys (rf 3); anti-entropy: \(peersSharingKeys) peers share keys, "
            + "digest table \(digestTableBytes) B, \(decimal(antiEntropyBytesPerNodePerSecond, 1)) B/s holding "
            + "\(keyCopiesPerNode) key copies (\(decimal(antiEntropyBytesPerKeyPerSecond, 100_000)) B/s per copy), "
            + "\(events) events"
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
    private var sentBytes = 0
    private var events = 0

    public init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// Runs with `nodes` members: bootstrap, the backlog of its gossip drained, the steady state, a
    /// join, then a crash.
    public mutating func run(nodes: Int, maximumPeriods: Int = 100, keyCopiesPerNode: Int = 100_000) -> ScaleResult {
        for index in 0...nodes {  // index `nodes` is the one that joins later
            addresses.append("10.\(index / 65536).\(index / 256 % 256).\(index % 256):7000")
            members.append(nil)
            scheduled.append(nil)
        }
        // Bootstrap: every member starts knowing every other, through the real `state` message.
        let everyone = (0..<nodes).map {
            MemberUpdate(id: NodeID("n\($0)"), address: addresses[$0], incarnation: 0, status: .alive)
        }
        let sync = MembershipMessage(
            sender: everyone[0].id, senderAddress: everyone[0].address, senderIncarnation: 0, updates: [],
            body: .state(nonce: 1, everyone))
        // Measured first, while the heap is fresh: resident memory grows only by what is new.
        // Twenty members' views at once, measured by the resident memory they add (page-grained,
        // hence many of them): an estimate, not an exact count.
        let (views, membershipGrowth) = Self.residentGrowth { () -> [Membership] in
            (0..<20).map { index in
                var membership = Membership(
                    me: NodeID("probe\(index)"), address: "10.255.255.\(index):7000", configuration: configuration,
                    seed: UInt64(index), now: origin)
                _ = membership.received(sync, now: origin)
                return membership
            }
        }
        assert(views.allSatisfy { $0.view.count == nodes + 1 }, "ScaleExperiment: a probe missed members")
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
        // A start of every member at once leaves each with every other's arrival to gossip, about
        // 3·log2(N) times each: until that backlog has drained, a new update waits behind it (a
        // crash took 68 periods to be known everywhere at 1,000 members measured 20 periods after
        // the start, 12 at 300 after 200). The steady state is measured after it.
        let warmUp = max(20, 15 * (Int.bitWidth - nodes.leadingZeroBitCount))
        advance(until: SimulatedTime.start + period * warmUp)
        sent = 0
        sentBytes = 0
        advance(until: SimulatedTime.start + period * (warmUp + 10))
        let perNode = Double(sent) / Double(nodes) / 10
        let bytesPerNode = Double(sentBytes) / Double(nodes) / 10

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
        let ids = everyone.map(\.id)
        let ring = HashRing(members: ids)
        let clock = ContinuousClock()
        let buildTime = clock.measure { _ = HashRing(members: ids) }
        let rebuildTime = clock.measure { _ = ring.with(members: ids + [NodeID("n\(nodes)")]) }
        let plan = RingPlan.compute(current: ids, adding: [NodeID("n\(nodes)")], removing: [], replicationFactor: 3)
        let digests = Self.digestCost(ring: ring, member: ids[0], replicationFactor: 3, keyCopies: keyCopiesPerNode)
        return ScaleResult(
            nodes: nodes, joinPeriods: joinPeriods, crashPeriods: crashPeriods, messagesPerNodePerPeriod: perNode,
            bytesPerNodePerPeriod: bytesPerNode, stateSyncBytes: PeerProtocol.encode(.membership(sync)).count,
            membershipHeapBytes: membershipGrowth, ringHeapBytes: ring.pointPositions.count * 12 + ids.count * 16,
            ringBuildSeconds: buildTime.secondsValue,
            ringRebuildSeconds: rebuildTime.secondsValue, keysMovedOnJoin: plan.moved,
            peersSharingKeys: digests.peers, digestTableBytes: digests.peers * DigestBucket.bucketsPerPeer * 8,
            keyCopiesPerNode: keyCopiesPerNode, antiEntropyBytesPerNodePerSecond: digests.bytesPerRound,
            antiEntropyBytesPerKeyPerSecond: digests.bytesPerRound / Double(keyCopiesPerNode), events: events)
    }

    /// What `member`'s anti-entropy digests cost when it holds `keyCopies` key copies at uniformly
    /// random positions: the peers it shares keys with, and the expected bytes of the digest frame
    /// of one round (to a peer picked at random among the others, as `ClusterNode` does; a peer it
    /// shares nothing with gets an empty digest). Exact over the ring's arcs: a bucket shared with a
    /// peer is sent when it holds a key, which for `λ` expected keys happens with probability
    /// 1 − e^(−λ).
    private static func digestCost(
        ring: HashRing, member: NodeID, replicationFactor: Int, keyCopies: Int
    )
        -> (peers: Int, bytesPerRound: Double)
    {
        let positions = ring.pointPositions
        guard positions.count > 1, ring.members.count > 1 else { return (0, 0) }
        let buckets = DigestBucket.bucketsPerPeer
        let bucketShift = UInt64(64 - (buckets - 1).nonzeroBitCount)
        // For each peer, the length of the arcs it shares with `member`, by bucket; and the length
        // of every arc `member` holds (to turn `keyCopies` into keys per unit of arc).
        var shared: [NodeID: [Double]] = [:]
        var held = 0.0
        for index in positions.indices {
            let replicas = ring.preferenceList(forPosition: positions[index], count: replicationFactor)
            guard replicas.contains(member) else { continue }
            // The arc (previous, here], split where it crosses bucket boundaries.
            var start = (index == 0 ? positions[positions.count - 1] : positions[index - 1]) &+ 1
            var remaining = Double(positions[index] &- start) + 1
            held += remaining
            while remaining > 0 {
                let bucket = Int(start >> bucketShift)
                let bucketEnd = (UInt64(bucket) << bucketShift) | ((1 << bucketShift) - 1)
                let piece = min(remaining, Double(bucketEnd &- start) + 1)
                for peer in replicas where peer != member {
                    shared[peer, default: [Double](repeating: 0, count: buckets)][bucket] += piece
                }
                remaining -= piece
                start = bucketEnd &+ 1
            }
        }
        let keysPerLength = Double(keyCopies) / held
        func frameBytes(buckets count: Int) -> Int {
            let digest = ReplicationMessage(
                sender: member, senderAddress: "10.0.0.0:7000",
                body: .digest(buckets: (0..<count).map { DigestBucket(index: UInt16($0), digest: 1) }))
            return PeerProtocol.encode(.replication(digest)).count
        }
        var total = Double((ring.members.count - 1 - shared.count) * frameBytes(buckets: 0))
        for lengths in shared.values {
            let sent = lengths.reduce(0) { $0 + (1 - exp(-$1 * keysPerLength)) }
            total += Double(frameBytes(buckets: Int(sent.rounded())))
        }
        return (shared.count, total / Double(ring.members.count - 1))
    }

    /// The resident memory `make` adds while its result is alive, divided by 20 (it makes 20), or
    /// `nil` where `/proc/self/statm` cannot be read.
    private static func residentGrowth<T>(_ make: () -> T) -> (T, Int?) {
        let before = residentBytes()
        let value = make()
        let after = residentBytes()
        guard let before, let after else { return (value, nil) }
        return (value, max(0, after - before) / 20)
    }

    private static func residentBytes() -> Int? {
        #if canImport(Glibc)
            guard let file = fopen("/proc/self/statm", "r") else { return nil }
            defer { fclose(file) }
            var buffer = [UInt8](repeating: 0, count: 128)
            let count = fread(&buffer, 1, buffer.count, file)
            // "size resident shared ...", in pages.
            let fields = buffer[..<count].split(separator: UInt8(ascii: " "))
            guard fields.count > 1, let resident = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
            return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
            return nil
        #endif
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
            let frame = PeerProtocol.encode(.membership(message))
            sentBytes += frame.count
            guard let to = Self.index(of: address) else { continue }
            queue.push(.deliver(to: to, frame: frame), at: now + .milliseconds(1))
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
