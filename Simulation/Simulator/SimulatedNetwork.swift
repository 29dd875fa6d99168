import CacheCore

/// The network of a run: which node listens where, partitions (two sides, one node isolated, or a
/// one-way link), and per message drops, duplicates and a random latency (so messages overtake each
/// other), all drawn from the run's seed.
struct SimulatedNetwork {
    /// Each node's peer address, by index.
    let addresses: [String]
    private let swarm: SwarmConfiguration
    private var random: SplitMix64
    /// Partition side of each node; messages cross only within a side (and not along `oneWay`).
    private(set) var group: [Int]
    /// Links that carry nothing: `[from, to]`.
    private(set) var oneWay: Set<[Int]> = []
    /// When the current partition heals, if one is in force.
    private(set) var partitionHealsAt: Instant?
    /// Whether drops and duplicates happen (the liveness phase turns them off).
    var faulty = true
    /// Nodes that receive nothing at all (test clusters).
    var unreachable: Set<Int> = []

    init(addresses: [String], swarm: SwarmConfiguration, random: SplitMix64) {
        self.addresses = addresses
        self.swarm = swarm
        self.random = random
        self.group = Array(repeating: 0, count: addresses.count)
    }

    func index(of address: String) -> Int? { addresses.firstIndex(of: address) }

    /// When a message sent now from `from` to `to` arrives: never, once, or twice.
    mutating func deliveries(from: Int, to: Int, now: Instant) -> [Instant] {
        if faulty, random.nextUnit() < swarm.dropRate { return [] }
        guard group[from] == group[to], !oneWay.contains([from, to]), !unreachable.contains(to) else { return [] }
        var times = [now + latency()]
        if faulty, random.nextUnit() < swarm.duplicateRate { times.append(now + latency()) }
        return times
    }

    /// Whether a connection from `from` to `to` can be made now (no partition between them, no
    /// one-way cut, the receiver reachable); drops concern messages, not connections.
    func canConnect(from: Int, to: Int) -> Bool {
        group[from] == group[to] && !oneWay.contains([from, to]) && !oneWay.contains([to, from])
            && !unreachable.contains(to)
    }

    private mutating func latency() -> Duration {
        swarm.minimumLatency + random.duration(below: swarm.maximumLatency - swarm.minimumLatency + .nanoseconds(1))
    }

    /// Starts a partition drawn from `faults`: two random sides, one node isolated, or a one-way link;
    /// it heals 0.5 to 3.5 s later.
    mutating func partition(using faults: inout SplitMix64, now: Instant) {
        let count = addresses.count
        switch faults.below(3) {
        case 0:
            group = (0..<count).map { _ in faults.below(2) }
        case 1:
            let isolated = faults.below(count)
            group = (0..<count).map { $0 == isolated ? 1 : 0 }
        default:
            let a = faults.below(count)
            let b = faults.below(count)
            if a != b { oneWay.insert([a, b]) }
        }
        partitionHealsAt = now + .milliseconds(500) + faults.duration(below: .seconds(3))
    }

    /// Heals the partition if its time has come (or at once with `force`).
    mutating func heal(now: Instant, force: Bool = false) {
        guard force || partitionHealsAt.map({ now >= $0 }) == true else { return }
        group = Array(repeating: 0, count: addresses.count)
        oneWay = []
        partitionHealsAt = nil
    }
}
