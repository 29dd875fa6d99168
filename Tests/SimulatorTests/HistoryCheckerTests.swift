import CacheCore
import HistoryCheckers
import Testing

/// The history checkers shared by the simulator and cache-chaos, on hand-made histories: each
/// passes a legal one and names the guarantee an illegal one breaks.
@Suite("History checkers")
struct HistoryCheckerTests {
    /// An operation from `from` to `to` seconds (`nil`: never answered).
    private func operation(
        _ kind: RecordedOperation.Kind, _ from: Double, _ to: Double?, key: String = "k",
        outcome: RecordedOperation.Outcome = .ok, read: Int? = nil, level: ConsistencyLevel = .quorum
    ) -> RecordedOperation {
        var operation = RecordedOperation(
            client: 0, key: key, kind: kind, level: level, node: 0, invoke: instant(from))
        operation.outcome = to == nil ? .unknown : outcome
        operation.complete = to.map(instant) ?? .distantFuture
        operation.read = read
        return operation
    }

    private func instant(_ seconds: Double) -> Instant { Instant(nanosecondsSinceEpoch: Int64(seconds * 1e9)) }

    private func checkers(_ violations: [Violation]) -> Set<String> { Set(violations.map(\.checker.rawValue)) }

    @Test func aFinalValueOlderThanAnAcknowledgedWriteIsALostWrite() {
        let history = [operation(.put(value: 1, ttl: nil), 0, 1), operation(.put(value: 2, ttl: nil), 2, 3)]
        #expect(HistoryChecker.lostWrites(history, finals: ["k": 2], slack: .zero).isEmpty)
        #expect(checkers(HistoryChecker.lostWrites(history, finals: ["k": 1], slack: .zero)) == ["lost write"])
        #expect(checkers(HistoryChecker.lostWrites(history, finals: ["k": nil], slack: .zero)) == ["lost write"])
        // Within the clocks' slack the older write may still be ordered after.
        #expect(HistoryChecker.lostWrites(history, finals: ["k": 1], slack: .seconds(2)).isEmpty)
        // A write whose outcome is unknown may have been versioned any time after it began.
        let unknown = [operation(.put(value: 1, ttl: nil), 0, nil), operation(.put(value: 2, ttl: nil), 2, 3)]
        #expect(HistoryChecker.lostWrites(unknown, finals: ["k": 1], slack: .zero).isEmpty)
        // A value nobody wrote.
        #expect(checkers(HistoryChecker.lostWrites(history, finals: ["k": 9], slack: .zero)) == ["lost write"])
        // The budget excuses what it names.
        #expect(HistoryChecker.lostWrites(history, finals: ["k": 1], slack: .zero) { _ in true }.isEmpty)
    }

    @Test func aValueBackAfterAnAcknowledgedDeleteIsAResurrection() {
        let history = [operation(.put(value: 1, ttl: nil), 0, 1), operation(.delete, 2, 3)]
        #expect(HistoryChecker.lostWrites(history, finals: ["k": nil], slack: .zero).isEmpty)
        #expect(checkers(HistoryChecker.lostWrites(history, finals: ["k": 1], slack: .zero)) == ["resurrection"])
        // An expired value leaves nothing, as a delete does.
        let expiring = [operation(.put(value: 1, ttl: .seconds(1)), 0, 1)]
        #expect(HistoryChecker.lostWrites(expiring, finals: ["k": nil], slack: .zero).isEmpty)
    }

    @Test func aValueReadLateOrWithALongerOrNoTimeToLiveBreaksTheTimeToLive() {
        let put = operation(.put(value: 1, ttl: .seconds(2)), 0, 1)
        func read(at time: Double, _ seen: RecordedOperation.TimeToLiveSeen?) -> RecordedOperation {
            var read = operation(.get, time, time + 0.01, read: 1)
            read.timeToLive = seen
            return read
        }
        // Read within the TTL, with what is left of it (rounded up to whole seconds).
        #expect(HistoryChecker.timeToLive([put, read(at: 1.5, .remaining(.seconds(2)))], slack: .zero).isEmpty)
        // Served after the TTL ended (the put answered at 1 s: it ends by 3 s).
        #expect(checkers(HistoryChecker.timeToLive([put, read(at: 3.5, nil)], slack: .zero)) == ["ttl"])
        #expect(HistoryChecker.timeToLive([put, read(at: 3.5, nil)], slack: .seconds(1)).isEmpty)
        // Extended, and lost.
        #expect(
            checkers(HistoryChecker.timeToLive([put, read(at: 1.5, .remaining(.seconds(60)))], slack: .zero)) == ["ttl"]
        )
        #expect(checkers(HistoryChecker.timeToLive([put, read(at: 1.5, .never)], slack: .zero)) == ["ttl"])
        // A value written to live for ever, read with a TTL.
        let forever = operation(.put(value: 1, ttl: nil), 0, 1)
        #expect(
            checkers(HistoryChecker.timeToLive([forever, read(at: 1.5, .remaining(.seconds(5)))], slack: .zero)) == [
                "ttl"
            ])
        #expect(HistoryChecker.timeToLive([forever, read(at: 1.5, .never)], slack: .zero).isEmpty)
    }

    @Test func aSuccessWithTooFewReplicasUpBreaksItsLevel() {
        let write = operation(.put(value: 1, ttl: nil), 0, 1, level: .all)
        #expect(HistoryChecker.levels([write], replicationFactor: 3) { _ in 0 }.isEmpty)
        #expect(checkers(HistoryChecker.levels([write], replicationFactor: 3) { _ in 1 }) == ["level"])
        let quorum = operation(.get, 0, 1, read: nil, level: .quorum)
        #expect(HistoryChecker.levels([quorum], replicationFactor: 3) { _ in 1 }.isEmpty)
        #expect(checkers(HistoryChecker.levels([quorum], replicationFactor: 3) { _ in 2 }) == ["level"])
        // A refusal claims no level.
        let refused = operation(.put(value: 2, ttl: nil), 0, 1, outcome: .failed, level: .all)
        #expect(HistoryChecker.levels([refused], replicationFactor: 3) { _ in 3 }.isEmpty)
    }

    @Test func undocumentedRefusalsAndSlowAnswersAreNamed() {
        var refused = operation(.put(value: 1, ttl: nil), 0, 1, outcome: .failed)
        refused.refusal = "500 oops"
        #expect(checkers(HistoryChecker.refusals([refused]) { $0.hasPrefix("503 ") }) == ["refusal"])
        refused.refusal = "503 {}"
        #expect(HistoryChecker.refusals([refused]) { $0.hasPrefix("503 ") }.isEmpty)
        let slow = operation(.get, 0, 5, read: nil)
        let unanswered = operation(.get, 0, nil)
        #expect(
            checkers(HistoryChecker.timeouts([slow, unanswered], limit: .seconds(3)) { _ in false }) == ["timeout"])
        #expect(HistoryChecker.timeouts([slow, unanswered], limit: .seconds(3)) { _ in false }.count == 2)
        #expect(HistoryChecker.timeouts([slow, unanswered], limit: .seconds(3)) { _ in true }.isEmpty)
        #expect(HistoryChecker.timeouts([slow], limit: .seconds(10)) { _ in false }.isEmpty)
    }

    @Test func linearizabilityLeavesOutFailedReadsAndLetsFailedWritesTakeEffect() {
        let history = [
            operation(.put(value: 1, ttl: nil), 0, 1),
            operation(.put(value: 2, ttl: nil), 2, 3, outcome: .failed),
            operation(.get, 4, 5, read: 2),
            operation(.get, 6, 7, outcome: .failed, read: 9),
        ]
        #expect(HistoryChecker.linearizability(of: history) == .linearizable)
        let stale = [
            operation(.put(value: 1, ttl: nil), 0, 1), operation(.put(value: 2, ttl: nil), 2, 3),
            operation(.get, 4, 5, read: 1),
        ]
        #expect(HistoryChecker.linearizability(of: stale) == .violation)
    }
}
