import CacheCore
import HistoryCheckers
import Simulator
import Testing

@Suite("Linearizability checker")
struct LinearizabilityCheckerTests {
    /// `Int64.max` is `Instant.distantFuture`: an outcome never known.
    private func instant(_ nanoseconds: Int64) -> Instant { Instant(nanosecondsSinceEpoch: nanoseconds) }

    private func write(_ value: Int?, _ invoke: Int64, _ complete: Int64) -> RegisterOperation {
        RegisterOperation(invoke: instant(invoke), complete: instant(complete), kind: .write(value))
    }

    private func read(_ value: Int?, _ invoke: Int64, _ complete: Int64) -> RegisterOperation {
        RegisterOperation(invoke: instant(invoke), complete: instant(complete), kind: .read(value))
    }

    @Test func concurrentOperationsMayTakeEffectInEitherOrder() {
        // Write 1 ended before the read of 2 began, so 1 precedes 2, and the last read of 1 has no
        // explanation.
        let history = [write(1, 0, 10), write(2, 5, 15), read(2, 11, 12), read(1, 16, 20)]
        #expect(LinearizabilityChecker.check(history) == .violation)
        // Had write 1 lasted longer, it could take effect after the read of 2.
        let overlapping = [write(1, 0, 30), write(2, 5, 15), read(2, 11, 12), read(1, 16, 20)]
        #expect(LinearizabilityChecker.check(overlapping) == .linearizable)
    }

    @Test func aStaleReadAfterACompletedWriteIsAViolation() {
        #expect(LinearizabilityChecker.check([write(1, 0, 1), write(2, 2, 3), read(1, 4, 5)]) == .violation)
        #expect(LinearizabilityChecker.check([write(1, 0, 1), read(nil, 2, 3)]) == .violation)
        #expect(LinearizabilityChecker.check([write(1, 0, 1), write(nil, 2, 3), read(nil, 4, 5)]) == .linearizable)
    }

    @Test func aWriteWithAnUnknownOutcomeMayOrMayNotHaveHappened() {
        let unknown = Int64.max
        #expect(LinearizabilityChecker.check([write(1, 0, unknown), read(nil, 2, 3)]) == .linearizable)
        #expect(LinearizabilityChecker.check([write(1, 0, unknown), read(1, 2, 3)]) == .linearizable)
        // Once seen, it cannot be unseen.
        #expect(LinearizabilityChecker.check([write(1, 0, unknown), read(1, 2, 3), read(nil, 4, 5)]) == .violation)
    }
}
