import Foundation
import Testing

@testable import CacheCore

@Suite("Hash ring")
struct HashRingTests {
    private func nodes(_ count: Int) -> [NodeID] { (0..<count).map { NodeID("node-\($0)") } }

    private func keys(_ count: Int) -> [[UInt8]] { (0..<count).map { Array("key:\($0)".utf8) } }

    @Test(arguments: [3, 10, 50, 100])
    func loadIsBalancedWithTheDefaultVirtualNodes(memberCount: Int) {
        let ring = HashRing(members: nodes(memberCount))
        var counts: [NodeID: Int] = [:]
        let keyCount = 1_000_000
        for key in keys(keyCount) { counts[ring.owner(of: key)!, default: 0] += 1 }
        let mean = Double(keyCount) / Double(memberCount)
        let maximum = Double(counts.values.max()!)
        #expect(counts.count == memberCount)
        #expect(maximum / mean <= 1.10, "max/mean \(maximum / mean) with \(memberCount) members")
    }

    @Test(arguments: [5, 20, 100])
    func addingOrRemovingOneMemberMovesAboutOneNth(memberCount: Int) {
        let keyCount = 200_000
        let allKeys = keys(keyCount)
        let before = HashRing(members: nodes(memberCount))
        let grown = HashRing(members: nodes(memberCount + 1))
        let shrunk = HashRing(members: nodes(memberCount).dropLast())
        var movedOnJoin = 0
        var movedOnLeave = 0
        for key in allKeys {
            let owner = before.owner(of: key)
            let joined = grown.owner(of: key)
            if owner != joined {
                movedOnJoin += 1
                // Keys only ever move to the new member.
                #expect(joined == NodeID("node-\(memberCount)"))
            }
            if owner != shrunk.owner(of: key) {
                movedOnLeave += 1
                #expect(owner == NodeID("node-\(memberCount - 1)"))
            }
        }
        let bound = 1.2 * Double(keyCount) / Double(memberCount)
        #expect(Double(movedOnJoin) <= bound, "join moved \(movedOnJoin) of \(keyCount)")
        #expect(Double(movedOnLeave) <= bound, "leave moved \(movedOnLeave) of \(keyCount)")
    }

    /// A ring rebuilt from the last one (kept points merged with the new members') is the ring made
    /// from scratch, through joins, departures and both at once.
    @Test func aRingRebuiltFromTheLastIsTheRingMadeAfresh() {
        var random = SplitMix64(seed: 7)
        let pool = (0..<12).map { NodeID("n\($0)") }
        var ring = HashRing(members: [pool[0]], virtualNodes: 64)
        for step in 0..<200 {
            let members = pool.filter { _ in random.below(2) == 0 }
            guard !members.isEmpty else { continue }
            let rebuilt = ring.with(members: members)
            let fresh = HashRing(members: members, virtualNodes: 64)
            #expect(rebuilt == fresh, "step \(step): \(ring.members) -> \(members)")
            ring = rebuilt
        }
        // The ring vectors pin the points themselves: the fresh ring computes them as before.
        #expect(ring.with(members: ring.members) == ring)
    }

    @Test func sameMembershipSameRingInAnyOrder() {
        var random = SplitMix64(seed: 9)
        let members = nodes(30)
        let shuffled = members.shuffled(using: &random) + [members[3]]
        #expect(HashRing(members: members) == HashRing(members: shuffled))
    }

    @Test func nodeNamesAreComparedByBytes() {
        #expect(NodeID("caf\u{E9}") != NodeID("cafe\u{301}"))
        #expect(Set([NodeID("caf\u{E9}"), NodeID("cafe\u{301}")]).count == 2)
        #expect(NodeID("a") == NodeID("a"))
    }

    @Test func preferenceListsHoldDistinctMembersPrimaryFirst() {
        let ring = HashRing(members: nodes(7))
        for key in keys(2000) {
            let list = ring.preferenceList(for: key, count: 3)
            #expect(list.count == 3)
            #expect(Set(list).count == 3)
            #expect(list.first == ring.owner(of: key))
        }
        #expect(ring.preferenceList(for: [1], count: 10).count == 7)
        #expect(HashRing(members: []).preferenceList(for: [1], count: 3).isEmpty)
        #expect(HashRing(members: []).owner(of: [1]) == nil)
    }

    @Test func replicasAreSpreadEvenlyToo() {
        let ring = HashRing(members: nodes(10))
        var counts: [NodeID: Int] = [:]
        let keyCount = 200_000
        for key in keys(keyCount) {
            for member in ring.preferenceList(for: key, count: 3) { counts[member, default: 0] += 1 }
        }
        let mean = Double(keyCount * 3) / 10
        #expect(Double(counts.values.max()!) / mean <= 1.10)
    }
}
