import CacheCore

/// What a cluster of `nodes` costs, measured on the real node state machine in a calm simulated
/// network (`TestCluster`: messages in order, no loss): the peer messages and bytes one client
/// operation takes, the background traffic each node carries, how evenly keys spread, and what a
/// join moves. The figures docs/scaling.md sets against what the design predicts.
public struct CostExperiment {
    public struct Result: Sendable, CustomStringConvertible {
        public var nodes: Int
        public var replicationFactor: Int
        public var keys: Int
        public var operations: Int
        /// Peer messages and bytes per client operation (half reads, half writes, at `quorum`).
        public var messagesPerOperation: Double
        public var bytesPerOperation: Double
        /// Per node per second with no client load: membership, then anti-entropy.
        public var membershipMessagesPerNodePerSecond: Double
        public var membershipBytesPerNodePerSecond: Double
        public var antiEntropyBytesPerNodePerSecond: Double
        /// Anti-entropy bytes per second for each key copy a node holds.
        public var antiEntropyBytesPerKeyPerSecond: Double
        /// The busiest node's key copies over the mean (1.0: perfectly even), as measured on the
        /// keys written, and as the ring's exact replica shares give it (what infinitely many keys
        /// would show).
        public var loadMaxOverMean: Double
        public var ringShareMaxOverMean: Double
        /// Share of the key copies the joining node received, and share of the keys whose replica
        /// set changed (what the ring predicts: 1/(N+1) and rf/(N+1)).
        public var copiesMovedOnJoin: Double
        public var keysMovedOnJoin: Double
        /// Simulated seconds from a join until every node's ring held the new member.
        public var joinSeconds: Double?

        public var description: String {
            return "nodes=\(nodes) rf=\(replicationFactor): \(decimal(messagesPerOperation)) messages and "
                + "\(decimal(bytesPerOperation, 1)) bytes per operation; per node per second "
                + "\(decimal(membershipMessagesPerNodePerSecond)) membership messages (\(decimal(membershipBytesPerNodePerSecond, 1)) B), "
                + "\(decimal(antiEntropyBytesPerNodePerSecond, 1)) B anti-entropy (\(decimal(antiEntropyBytesPerKeyPerSecond, 1000)) B per key copy); "
                + "load max/mean \(decimal(loadMaxOverMean, 1000)) (\(keys) keys; the ring's shares: \(decimal(ringShareMaxOverMean, 1000))); a join moved \(decimal(copiesMovedOnJoin * 100, 10)) % of copies, "
                + "\(decimal(keysMovedOnJoin * 100, 10)) % of keys; ring everywhere after "
                + "\(joinSeconds.map { decimal($0, 10) + " s" } ?? "not reached")"
        }
    }

    public init() {}

    /// Runs `operations` client requests over `keys` keys (default: 100 per node, at least 2,000)
    /// spread uniformly at random (seeded).
    public func run(
        nodes: Int, replicationFactor: Int = 3, keys: Int? = nil, operations: Int = 2000, seed: UInt64 = 1
    ) -> Result {
        let keys = keys ?? max(2000, 100 * nodes)
        precondition(nodes >= 1 && keys > 0 && operations > 0, "CostExperiment: a cluster and some work")
        var random = SplitMix64(seed: seed)
        var cluster = TestCluster(size: nodes, policy: nil, seed: seed) { configuration in
            configuration.replicationFactor = replicationFactor
        }
        func ringsComplete(_ size: Int) -> Bool {
            (0..<cluster.size).allSatisfy { cluster.node($0).ring.members.count == size }
        }
        var settling = 0
        while !ringsComplete(nodes), settling < 600 {
            cluster.advance(by: .milliseconds(100))
            settling += 1
        }
        precondition(ringsComplete(nodes), "CostExperiment: membership did not converge")
        let names = (0..<keys).map { Array("key:\($0)".utf8) }
        var request: UInt64 = 1
        for key in names {
            cluster.request(
                request, at: random.below(nodes), .put(key: key, value: [1, 2, 3], ttl: .never, consistency: nil))
            request += 1
        }

        // The client path: nothing but requests, no time passes (no timer, no gossip).
        cluster.traffic = Traffic()
        cluster.countsTraffic = true
        for index in 0..<operations {
            let key = names[random.below(keys)]
            let node = random.below(nodes)
            let operation: ClusterNode.ClientOperation =
                index % 2 == 0
                ? .get(key: key, consistency: nil) : .put(key: key, value: [4, 5, 6], ttl: .never, consistency: nil)
            cluster.request(request, at: node, operation)
            request += 1
        }
        let requestTraffic = cluster.traffic
        let copies = (0..<nodes).map { cluster.store($0).count }
        let mean = Double(copies.reduce(0, +)) / Double(nodes)

        // No load: what membership and anti-entropy cost each node.
        cluster.traffic = Traffic()
        let seconds = 10
        for _ in 0..<(seconds * 10) { cluster.advance(by: .milliseconds(100)) }
        let background = cluster.traffic
        cluster.countsTraffic = false

        // A join: what it moves, and when every ring has it.
        let before = Dictionary(uniqueKeysWithValues: names.map { ($0, Set(cluster.node(0).replicas(of: $0))) })
        let joined = cluster.addNode()
        var joinSeconds: Double?
        for step in 1...600 {
            cluster.advance(by: .milliseconds(100))
            if joinSeconds == nil, ringsComplete(nodes + 1) { joinSeconds = Double(step) / 10 }
            if joinSeconds != nil, (0...nodes).allSatisfy({ cluster.node($0).handoffBacklog == 0 }) { break }
        }
        let changed = names.filter { Set(cluster.node(0).replicas(of: $0)) != before[$0] }.count
        let totalCopies = Double(names.count * min(replicationFactor, nodes))

        let shares = RingPlan.compute(
            current: (0..<nodes).map { NodeID("n\($0)") }, adding: [], removing: [],
            replicationFactor: replicationFactor
        ).members.map(\.before)
        let meanShare = shares.reduce(0, +) / Double(shares.count)
        let perOperation = Double(operations)
        let perNodeSecond = Double(nodes * seconds)
        let antiEntropy = Double(background.bytes[.antiEntropy] ?? 0) / perNodeSecond
        return Result(
            nodes: nodes, replicationFactor: replicationFactor, keys: keys, operations: operations,
            messagesPerOperation: Double(requestTraffic.messages.values.reduce(0, +)) / perOperation,
            bytesPerOperation: Double(requestTraffic.bytes.values.reduce(0, +)) / perOperation,
            membershipMessagesPerNodePerSecond: Double(background.messages[.membership] ?? 0) / perNodeSecond,
            membershipBytesPerNodePerSecond: Double(background.bytes[.membership] ?? 0) / perNodeSecond,
            antiEntropyBytesPerNodePerSecond: antiEntropy,
            antiEntropyBytesPerKeyPerSecond: mean > 0 ? antiEntropy / mean : 0,
            loadMaxOverMean: mean > 0 ? Double(copies.max() ?? 0) / mean : 0,
            ringShareMaxOverMean: (shares.max() ?? 0) / meanShare,
            copiesMovedOnJoin: Double(cluster.store(joined).count) / totalCopies,
            keysMovedOnJoin: Double(changed) / Double(names.count), joinSeconds: joinSeconds)
    }
}
