import Simulator
import Testing

/// What docs/scaling.md claims about a growing cluster, on the real node state machine: the peer
/// messages one client operation costs level off at 7 − 9/N (N = 3 replicas, `quorum`, half reads
/// and half writes), keys spread evenly, and a join moves what consistent hashing predicts.
@Suite("What a cluster costs as it grows")
struct CostExperimentTests {
    @Test(arguments: [3, 10, 20])
    func messagesPerOperationLevelOffAsPredicted(nodes: Int) async throws {
        let result = await SimulationThread.run { CostExperiment().run(nodes: nodes, replicationFactor: 3) }
        let predicted = 7 - 9 / Double(nodes)
        #expect(abs(result.messagesPerOperation - predicted) < 0.25, "\(result)")
        #expect(result.bytesPerOperation / result.messagesPerOperation < 60, "\(result)")
        // Membership costs each node the same whatever N: a ping, an ack, a push-pull every 10.
        #expect(abs(result.membershipMessagesPerNodePerSecond - 2.2) < 0.3, "\(result)")
        // The ring's exact shares are within a few percent; the keys written add sampling noise.
        #expect(result.ringShareMaxOverMean < 1.1, "\(result)")
        #expect(result.loadMaxOverMean < 1.3, "\(result)")
        // A join takes about 1/(N+1) of the copies.
        let share = 1 / Double(nodes + 1)
        #expect(abs(result.copiesMovedOnJoin - share) < share * 0.35, "\(result)")
        #expect(try #require(result.joinSeconds) < 5, "\(result)")
    }
}
