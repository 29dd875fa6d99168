import CacheCore

/// Nodes of the real state machine wired together for unit tests, on the simulator's parts: the same
/// node host and disks as seeded runs, but messages are delivered in the order they were sent, disks
/// sync when the test lets them, and time moves only when the test moves it.
public struct TestCluster {
    private var nodes: [SimulatedNode] = []
    private let configuration: ClusterNode.Configuration
    private let policy: SyncPolicy?
    /// The time every node reads.
    public private(set) var now: Instant
    private var inFlight: [(from: Int, to: Int, message: PeerMessage)] = []
    private var delivered = 0
    private var syncsPending: Set<Int> = []
    private var snapshotsPending: [(node: Int, snapshot: LogSnapshot)] = []
    /// Nodes whose incoming messages (and timers) are dropped.
    public var unreachable: Set<Int> = []
    /// A partition: messages between these nodes and the others are dropped (both sides run on).
    public var cut: Set<Int> = []
    /// Nodes whose log syncs are held back.
    public var slowDisks: Set<Int> = []
    /// How far a node's clock reads ahead of `now` (behind when negative); 0 when not given.
    public var clockOffsets: [Int: Duration] = [:]
    /// Every reply to a client, by request number.
    public private(set) var replies: [UInt64: ClusterNode.ClientReply] = [:]
    /// Messages a node sent that its peers would refuse (`PeerProtocol.problem(with:)`): none, ever.
    public private(set) var invalidSends: [String] = []
    /// What the nodes sent each other, by kind, when `countsTraffic` (each message encoded once more
    /// to count its bytes, so off by default).
    public var traffic = Traffic()
    public var countsTraffic = false
    private var seed: SplitMix64

    /// `size` nodes named `n0`… that join through each other, settled until every node sees every
    /// other. `configure` adjusts their configuration.
    public init(
        size: Int, policy: SyncPolicy? = .always, seed: UInt64 = 1,
        now: Instant = Instant(nanosecondsSinceEpoch: 1_800_000_000_000_000_000),
        configure: (inout ClusterNode.Configuration) -> Void = { _ in }
    ) {
        var configuration = ClusterNode.Configuration()
        configure(&configuration)
        self.configuration = configuration
        self.policy = policy
        self.now = now
        self.seed = SplitMix64(seed: seed)
        for index in 0..<size {
            nodes.append(SimulatedNode(id: NodeID("n\(index)"), address: "n\(index):7000", drift: 0, offset: .zero))
        }
        for index in 0..<size { start(index) }
        settle()
        // Let membership spread until every node sees every other.
        for _ in 0..<40 { advance(by: .milliseconds(100)) }
    }

    /// Node `index`'s state machine.
    public func node(_ index: Int) -> ClusterNode { nodes[index].runtime!.node }

    /// Node `index`'s store.
    public func store(_ index: Int) -> ReplicaStore { nodes[index].runtime!.node.store }

    /// Sends a client request to node `index`, settles, and returns the reply if there is one yet.
    @discardableResult
    public mutating func request(
        _ id: UInt64, at index: Int, _ operation: ClusterNode.ClientOperation, deadline: Instant? = nil
    ) -> ClusterNode.ClientReply? {
        step(index, .client(request: id, operation, deadline: deadline))
        settle()
        return replies[id]
    }

    /// Hands node `index` a message as if a peer had sent it, and settles.
    public mutating func deliver(_ message: PeerMessage, to index: Int) {
        step(index, .peer(message))
        settle()
    }

    /// Delivers messages in order and lets disks sync, until nothing is left to do.
    public mutating func settle() {
        for _ in 0..<100_000 {
            if delivered < inFlight.count {
                let (from, to, message) = inFlight[delivered]
                delivered += 1
                if delivered == inFlight.count {
                    inFlight = []
                    delivered = 0
                }
                if unreachable.contains(to) || !nodes[to].isRunning || cut.contains(from) != cut.contains(to) {
                    continue
                }
                step(to, .peer(message))
                continue
            }
            if let index = syncsPending.sorted().first(where: { !slowDisks.contains($0) }) {
                syncsPending.remove(index)
                route(nodes[index].synced(now: localTime(of: index), simulationTime: SimulatedTime.start), from: index)
                continue
            }
            if let position = snapshotsPending.firstIndex(where: { !slowDisks.contains($0.node) }) {
                let (index, snapshot) = snapshotsPending.remove(at: position)
                route(
                    nodes[index].snapshotWritten(
                        snapshot, now: localTime(of: index), simulationTime: SimulatedTime.start), from: index)
                continue
            }
            return
        }
        preconditionFailure("TestCluster.settle: the cluster never settled")
    }

    /// Moves time forward, fires every reachable node's timer, and settles.
    public mutating func advance(by duration: Duration) {
        now = now.advanced(by: duration)
        for index in nodes.indices where !unreachable.contains(index) && nodes[index].isRunning {
            step(index, .timer)
        }
        settle()
    }

    /// Starts one more node, `n<count>`, seeded with the others, and settles; returns its index.
    @discardableResult
    public mutating func addNode() -> Int {
        let index = nodes.count
        nodes.append(SimulatedNode(id: NodeID("n\(index)"), address: "n\(index):7000", drift: 0, offset: .zero))
        start(index)
        settle()
        return index
    }

    /// Asks node `index` to leave (`POST /cluster/leave`); returns whether it began to, and settles.
    @discardableResult
    public mutating func leave(_ index: Int) -> Bool {
        guard let output = nodes[index].leave(now: localTime(of: index), simulationTime: SimulatedTime.start) else {
            return false
        }
        route(output, from: index)
        settle()
        return true
    }

    /// How many nodes the cluster has (running or not).
    public var size: Int { nodes.count }

    /// Kills node `index`'s process (what it wrote stays on its disk) and starts it again from its
    /// disk through the real recovery.
    public mutating func restart(_ index: Int) {
        nodes[index].crash(powerLoss: false) { _ in 0 }
        syncsPending.remove(index)
        snapshotsPending.removeAll { $0.node == index }
        start(index)
        settle()
    }

    /// Stops node `index` as a crash does (`powerLoss`: its disk keeps only what was synced) and
    /// leaves it down until ``startAgain(_:)``.
    public mutating func stop(_ index: Int, powerLoss: Bool = false) {
        nodes[index].crash(powerLoss: powerLoss) { _ in 0 }
        syncsPending.remove(index)
        snapshotsPending.removeAll { $0.node == index }
    }

    /// Starts a stopped node `index` from its disk through the real recovery, and settles.
    public mutating func startAgain(_ index: Int) {
        precondition(!nodes[index].isRunning, "TestCluster: n\(index) is running")
        start(index)
        settle()
    }

    /// Whether node `index` runs.
    public func isRunning(_ index: Int) -> Bool { nodes[index].isRunning }

    /// Asks node `index` to forget `member` (`DELETE /cluster/members/{id}`); returns whether it did,
    /// and settles.
    @discardableResult
    public mutating func forget(_ member: NodeID, at index: Int) -> Bool {
        guard let output = nodes[index].forget(member, now: localTime(of: index), simulationTime: SimulatedTime.start)
        else { return false }
        route(output, from: index)
        settle()
        return true
    }

    private mutating func start(_ index: Int) {
        let seeds = nodes.map(\.address)
        let output = nodes[index].start(
            configuration: configuration, policy: policy, seed: seed.next(), seeds: seeds, now: localTime(of: index),
            simulationTime: SimulatedTime.start)
        route(output, from: index)
    }

    private mutating func step(_ index: Int, _ input: ClusterNode.Input) {
        route(nodes[index].step(input, now: localTime(of: index), simulationTime: SimulatedTime.start), from: index)
    }

    /// What node `index`'s clock reads.
    private func localTime(of index: Int) -> Instant { now.advanced(by: clockOffsets[index] ?? .zero) }

    private mutating func route(_ output: SimulatedNode.Output, from index: Int) {
        for (address, message) in output.sends {
            // What a node sends must be what its peers accept (the rules the decoder applies).
            if let problem = PeerProtocol.problem(with: message) { invalidSends.append("n\(index): \(problem)") }
            guard let to = nodes.firstIndex(where: { $0.address == address }) else { continue }
            if countsTraffic { traffic.count(message) }
            inFlight.append((index, to, message))
        }
        for reply in output.replies { replies[reply.request] = reply }
        if output.syncs > 0 { syncsPending.insert(index) }
        for snapshot in output.snapshots { snapshotsPending.append((index, snapshot)) }
    }
}

/// Peer messages and their bytes on the wire (whole frames), by what they are for.
public struct Traffic: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        /// SWIM: pings, acks, gossip and full-state syncs.
        case membership
        /// A client request's replica reads and writes, and their answers.
        case request
        /// Read repairs, handoffs and collections' writes.
        case repair
        /// Digests, summaries, pulls and pushes.
        case antiEntropy = "anti-entropy"
        /// Forgets of collected tombstones.
        case collection
    }

    public private(set) var messages: [Kind: Int] = [:]
    public private(set) var bytes: [Kind: Int] = [:]

    public init() {}

    mutating func count(_ message: PeerMessage) {
        let kind: Kind
        switch message {
        case .membership:
            kind = .membership
        case .replication(let replication):
            switch replication.body {
            case .write(_, _, _, let repair): kind = repair ? .repair : .request
            case .writeReply, .read, .readReply: kind = .request
            case .digest, .summary, .pull, .push: kind = .antiEntropy
            case .forget: kind = .collection
            }
        }
        messages[kind, default: 0] += 1
        bytes[kind, default: 0] += PeerProtocol.encode(message).count
    }
}
