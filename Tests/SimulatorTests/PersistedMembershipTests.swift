import CacheCore
import Simulator
import Testing

/// What a node knew of the members survives its restart, a whole cluster's power loss included
/// (member records in its log): a dead member keeps its share of the ring, a forgotten one stays out.
@Suite("Persisted membership")
struct PersistedMembershipTests {
    private static let doomed = NodeID("n3")

    /// Advances until every running node but `doomed`'s holds it at `status`, for at most a minute.
    private func waitUntil(_ cluster: inout TestCluster, holdsDoomed status: MemberStatus) -> Bool {
        for _ in 0..<600 {
            let held = (0..<3).allSatisfy { cluster.node($0).membership.status(of: Self.doomed) == status }
            if held { return true }
            cluster.advance(by: .milliseconds(100))
        }
        return false
    }

    private func powerLoss(_ cluster: inout TestCluster) {
        for index in 0..<3 { cluster.stop(index, powerLoss: true) }
        for index in 0..<3 { cluster.startAgain(index) }
        for _ in 0..<30 { cluster.advance(by: .milliseconds(100)) }
    }

    /// The hazard persisting membership removes: a member down when every node lost power was
    /// unknown after it, the others collected a deletion without it, and its old value came back
    /// when it returned. Now it keeps its share, the tombstone waits for it, and the key stays gone.
    @Test func aMemberDownAcrossAPowerLossKeepsItsShareAndCannotBringADeletedValueBack() throws {
        var cluster = TestCluster(size: 4) { $0.tombstoneGrace = .seconds(2) }
        let key = try #require(
            (0..<64).map { Array("key-\($0)".utf8) }.first { cluster.node(0).replicas(of: $0).contains(Self.doomed) })
        let stored = cluster.request(1, at: 0, .put(key: key, value: Array("old".utf8), ttl: .never, consistency: .all))
        guard case .stored = stored?.outcome else {
            Issue.record("the write was not stored: \(String(describing: stored))")
            return
        }
        cluster.stop(3)
        let deadBefore = waitUntil(&cluster, holdsDoomed: .dead)
        #expect(deadBefore)
        powerLoss(&cluster)
        for index in 0..<3 {
            #expect(cluster.node(index).ring.members.contains(Self.doomed), "n\(index) lost n3's share")
            #expect(cluster.node(index).membership.status(of: Self.doomed) != nil, "n\(index) does not know n3")
        }
        let deadAfter = waitUntil(&cluster, holdsDoomed: .dead)
        #expect(deadAfter)
        let deleted = cluster.request(2, at: 1, .delete(key: key, consistency: .quorum))
        guard case .deleted = deleted?.outcome else {
            Issue.record("the delete was not acknowledged: \(String(describing: deleted))")
            return
        }
        // Well past the grace: a tombstone n3 does not hold yet must not be collected.
        for _ in 0..<100 { cluster.advance(by: .milliseconds(100)) }
        cluster.startAgain(3)
        for _ in 0..<150 { cluster.advance(by: .milliseconds(100)) }
        let back = waitUntil(&cluster, holdsDoomed: .alive)
        #expect(back)
        let read = cluster.request(3, at: 2, .get(key: key, consistency: .all))
        #expect(read?.outcome == .notFound, "the deleted value came back: \(String(describing: read))")
    }

    /// A member that left, or was forgotten, before every node lost power is still departed after:
    /// on every node, out of every ring, without the operator forgetting it again.
    @Test(arguments: ["leave", "forget"])
    func aDepartedMemberStaysDepartedAfterAPowerLoss(how: String) {
        var cluster = TestCluster(size: 4)
        if how == "leave" {
            let began = cluster.leave(3)
            #expect(began)
            let departed = waitUntil(&cluster, holdsDoomed: .left)
            #expect(departed)
            for _ in 0..<50 where cluster.node(3).leaveState != .left { cluster.advance(by: .milliseconds(100)) }
            #expect(cluster.node(3).leaveState == .left)
            cluster.stop(3)
        } else {
            cluster.stop(3)
            let dead = waitUntil(&cluster, holdsDoomed: .dead)
            #expect(dead)
            let forgot = cluster.forget(Self.doomed, at: 0)
            #expect(forgot)
            let departed = waitUntil(&cluster, holdsDoomed: .left)
            #expect(departed)
        }
        powerLoss(&cluster)
        for index in 0..<3 {
            #expect(cluster.node(index).membership.status(of: Self.doomed) == .left, "n\(index)")
            #expect(cluster.node(index).ring.members == [NodeID("n0"), NodeID("n1"), NodeID("n2")], "n\(index)")
            #expect(cluster.node(index).readiness == .ready, "n\(index)")
        }
    }

    /// Members known from the log count for the ring, not for readiness: a node restarted while the
    /// others are down is joining until one of them answers.
    @Test func aRestartedNodeIsJoiningUntilAMemberAnswers() {
        var cluster = TestCluster(size: 3)
        for index in 0..<3 { cluster.stop(index) }
        cluster.startAgain(0)
        #expect(cluster.node(0).ring.members.count == 3)
        #expect(cluster.node(0).readiness == .joining)
        cluster.startAgain(1)
        for _ in 0..<20 { cluster.advance(by: .milliseconds(100)) }
        #expect(cluster.node(0).readiness == .ready)
    }
}
