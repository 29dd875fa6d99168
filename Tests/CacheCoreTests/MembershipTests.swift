import Testing

@testable import CacheCore

/// A few members wired together in memory: messages are delivered at once unless their link is
/// cut, and time advances in fixed steps. Deterministic for a given seed.
private struct TestCluster {
    var nodes: [NodeID: Membership] = [:]
    var addressOf: [NodeID: String] = [:]
    var nodeAt: [String: NodeID] = [:]
    var now = Instant(nanosecondsSinceEpoch: 1_000_000_000_000)
    /// Directed links that drop everything (from, to).
    var cut: Set<[NodeID]> = []
    /// Members that are down: they neither send, receive nor tick.
    var down: Set<NodeID> = []
    var trace: [String] = []
    let configuration = Membership.Configuration(
        protocolPeriod: .milliseconds(100), probeTimeout: .milliseconds(40), suspicionTimeout: .milliseconds(500),
        syncEveryPeriods: 5)

    init(size: Int, seed: UInt64) {
        for index in 0..<size {
            let id = NodeID("n\(index)")
            let address = "10.0.0.\(index):7000"
            addressOf[id] = address
            nodeAt[address] = id
            nodes[id] = Membership(
                me: id, address: address, configuration: configuration, seed: seed &+ UInt64(index), now: now)
        }
        for id in nodes.keys.sorted() where id != NodeID("n0") {
            run(id) { $0.join(seeds: ["10.0.0.0:7000"], now: $1) }
        }
    }

    mutating func run(_ id: NodeID, _ event: (inout Membership, Instant) -> [MembershipEffect]) {
        guard !down.contains(id) else { return }
        var pending = [(id, event(&nodes[id]!, now))]
        while !pending.isEmpty {
            let (from, effects) = pending.removeFirst()
            for effect in effects {
                guard case .send(let address, let message) = effect else {
                    trace.append("\(from): \(effect)")
                    continue
                }
                guard let to = nodeAt[address], !down.contains(to), !down.contains(from), !cut.contains([from, to])
                else {
                    continue
                }
                pending.append((to, nodes[to]!.received(message, now: now)))
            }
        }
    }

    mutating func advance(milliseconds: Int) {
        for _ in 0..<(milliseconds / 10) {
            now = now.advanced(byNanoseconds: 10_000_000)
            for id in nodes.keys.sorted() { run(id) { $0.tick(now: $1) } }
        }
    }

    func status(of member: String, seenBy observer: String) -> MemberStatus? {
        nodes[NodeID(observer)]!.status(of: NodeID(member))
    }
}

@Suite("SWIM membership")
struct MembershipTests {
    @Test func nodesJoinThroughASeedAndConverge() {
        var cluster = TestCluster(size: 5, seed: 1)
        cluster.advance(milliseconds: 1000)
        for observer in cluster.nodes.keys {
            let view = cluster.nodes[observer]!.view
            #expect(view.count == 5, "\(observer) sees \(view.map(\.id))")
            #expect(view.allSatisfy { $0.status == .alive })
        }
        let rings = cluster.nodes.values.map { HashRing(members: $0.keyOwners, virtualNodes: 16) }
        #expect(rings.allSatisfy { $0 == rings.first })
    }

    @Test func crashedMemberIsSuspectedThenDeclaredDeadWithinTheBound() {
        var cluster = TestCluster(size: 4, seed: 2)
        cluster.advance(milliseconds: 500)
        cluster.down.insert(NodeID("n3"))
        // Detection: the next probe of n3 fails within one round of periods (3 others to probe).
        cluster.advance(milliseconds: 4 * 100 + 100)
        let suspicious = ["n0", "n1", "n2"].filter { cluster.status(of: "n3", seenBy: $0) != .alive }
        #expect(!suspicious.isEmpty)
        // Declared dead one suspicion timeout later, and gossip tells everyone.
        cluster.advance(milliseconds: 500 + 300)
        for observer in ["n0", "n1", "n2"] {
            #expect(cluster.status(of: "n3", seenBy: observer) == .dead, "seen by \(observer)")
            // Dead is not gone: it keeps its keys until it is back or forgotten.
            #expect(cluster.nodes[NodeID(observer)]!.keyOwners.contains(NodeID("n3")))
        }
    }

    @Test func indirectProbesKeepAMemberAliveWhenOneLinkIsCut() {
        var cluster = TestCluster(size: 4, seed: 3)
        cluster.advance(milliseconds: 500)
        cluster.cut = [[NodeID("n0"), NodeID("n1")], [NodeID("n1"), NodeID("n0")]]
        cluster.advance(milliseconds: 3000)
        #expect(cluster.status(of: "n1", seenBy: "n0") == .alive)
        #expect(cluster.status(of: "n0", seenBy: "n1") == .alive)
    }

    @Test func suspectedMemberRefutesWithAHigherIncarnation() {
        var cluster = TestCluster(size: 3, seed: 4)
        cluster.advance(milliseconds: 500)
        // n2 is unreachable for long enough to be suspected, but not declared dead.
        cluster.down.insert(NodeID("n2"))
        var suspected = false
        for _ in 0..<60 where !suspected {
            cluster.advance(milliseconds: 10)
            suspected =
                cluster.status(of: "n2", seenBy: "n0") == .suspect || cluster.status(of: "n2", seenBy: "n1") == .suspect
        }
        #expect(suspected)
        cluster.down.remove(NodeID("n2"))
        cluster.advance(milliseconds: 1500)
        #expect(cluster.nodes[NodeID("n2")]!.incarnation >= 1)
        #expect(cluster.status(of: "n2", seenBy: "n0") == .alive)
        #expect(cluster.status(of: "n2", seenBy: "n1") == .alive)
    }

    @Test func deadMemberThatReturnsRejoinsWithAHigherIncarnation() {
        var cluster = TestCluster(size: 3, seed: 5)
        cluster.advance(milliseconds: 500)
        cluster.down.insert(NodeID("n1"))
        cluster.advance(milliseconds: 2000)
        #expect(cluster.status(of: "n1", seenBy: "n0") == .dead)
        cluster.down.remove(NodeID("n1"))
        cluster.advance(milliseconds: 2000)
        #expect(cluster.status(of: "n1", seenBy: "n0") == .alive)
        #expect(cluster.status(of: "n1", seenBy: "n2") == .alive)
        #expect(cluster.nodes[NodeID("n1")]!.incarnation >= 1)
    }

    @Test func aForgottenDeadMemberIsMarkedLeftEverywhereAndOwnsNoKeys() {
        var cluster = TestCluster(size: 4, seed: 8)
        cluster.advance(milliseconds: 500)
        // A live member cannot be forgotten.
        var refusal: Membership.ForgetRefusal?
        cluster.run(NodeID("n0")) { membership, now in
            if case .failure(let reason) = membership.forget(NodeID("n3"), now: now) { refusal = reason }
            return []
        }
        #expect(refusal == .notDead(.alive))
        cluster.down.insert(NodeID("n3"))
        cluster.advance(milliseconds: 2000)
        #expect(cluster.status(of: "n3", seenBy: "n0") == .dead)
        cluster.run(NodeID("n0")) { membership, now in
            guard case .success(let effects) = membership.forget(NodeID("n3"), now: now) else {
                Issue.record("forgetting a dead member was refused")
                return []
            }
            return effects
        }
        cluster.advance(milliseconds: 1000)
        for observer in ["n0", "n1", "n2"] {
            #expect(cluster.status(of: "n3", seenBy: observer) == .left, "seen by \(observer)")
            #expect(!cluster.nodes[NodeID(observer)]!.keyOwners.contains(NodeID("n3")))
        }
    }

    @Test func memberThatLeavesIsMarkedLeftAndOwnsNoKeys() {
        var cluster = TestCluster(size: 4, seed: 6)
        cluster.advance(milliseconds: 500)
        cluster.run(NodeID("n3")) { $0.leave(now: $1) }
        cluster.advance(milliseconds: 1000)
        for observer in ["n0", "n1", "n2"] {
            #expect(cluster.status(of: "n3", seenBy: observer) == .left, "seen by \(observer)")
            #expect(!cluster.nodes[NodeID(observer)]!.keyOwners.contains(NodeID("n3")))
        }
    }

    @Test func sameSeedSameHistory() {
        func run() -> [String] {
            var cluster = TestCluster(size: 5, seed: 7)
            cluster.advance(milliseconds: 500)
            cluster.down.insert(NodeID("n4"))
            cluster.advance(milliseconds: 1500)
            return cluster.trace
        }
        let first = run()
        #expect(!first.isEmpty)
        #expect(first == run())
    }

    /// Lifeguard: a node whose own probes go unanswered doubts itself first, and probes less often;
    /// once acks come back it returns to the normal rate.
    @Test func aNodeThatHearsNoAcksSlowsItsProbing() {
        var cluster = TestCluster(size: 4, seed: 11)
        cluster.advance(milliseconds: 2_000)
        let n0 = NodeID("n0")
        #expect(cluster.nodes[n0]!.localHealth == 0)
        // n0 hears nobody (its incoming links are cut): every probe of its fails.
        for other in ["n1", "n2", "n3"] { cluster.cut.insert([NodeID(other), n0]) }
        cluster.advance(milliseconds: 1_500)
        #expect(cluster.nodes[n0]!.localHealth >= 3)
        // The others, which hear each other, stay healthy.
        #expect(cluster.nodes[NodeID("n1")]!.localHealth <= 1)
        cluster.cut = []
        cluster.advance(milliseconds: 8_000)
        #expect(cluster.nodes[n0]!.localHealth == 0)
    }

    @Test func precedenceOfClaims() {
        func claim(_ incarnation: UInt64, _ status: MemberStatus) -> MemberUpdate {
            MemberUpdate(id: NodeID("x"), address: "a", incarnation: incarnation, status: status)
        }
        #expect(claim(1, .alive).overrides(claim(0, .suspect)))
        #expect(!claim(0, .alive).overrides(claim(0, .suspect)))
        #expect(claim(0, .suspect).overrides(claim(0, .alive)))
        #expect(claim(0, .dead).overrides(claim(0, .suspect)))
        #expect(!claim(0, .alive).overrides(claim(0, .dead)))
        #expect(claim(1, .alive).overrides(claim(0, .dead)))
        #expect(!claim(0, .suspect).overrides(claim(1, .alive)))
    }
}
