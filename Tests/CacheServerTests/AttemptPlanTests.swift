import Testing

@testable import CacheClient

/// The client's retry plan, as a value: which node, whether to wait, how long an attempt may take.
@Suite("Attempt plan")
struct AttemptPlanTests {
    private let a = NodeAddress("127.0.0.1:1")!
    private let b = NodeAddress("127.0.0.1:2")!

    @Test func anUnreachableNodeIsLeftWithoutAWaitAndARefusalWaits() {
        var plan = AttemptPlan(attempts: 4)
        #expect(plan.node(from: [a, b]) == a)
        #expect(!plan.waits(before: a), "the first attempt waits for nothing")
        plan.began(a)
        plan.failed(a, .unreachable("connection refused"))
        let next = plan.node(from: [a, b])
        #expect(next == b, "a node that failed in this call is not asked first")
        #expect(!plan.waits(before: b), "moving on from an unreachable node costs no wait")
        #expect(plan.waits(before: a), "asking the same node again backs off")
        plan.began(b)
        let refusal = CacheClientError.unavailable(level: "quorum", answered: 1, required: 2, node: "127.0.0.1:2")
        plan.failed(b, .refused(refusal))
        #expect(plan.waits(before: a), "after the cluster refused, the next attempt backs off")
        // Every candidate failed: start over from the best.
        #expect(plan.node(from: [a, b]) == a)
        #expect(plan.lastError == refusal)
        #expect(plan.lastFailure == "127.0.0.1:2: \(refusal)")
        #expect(plan.tried == ["127.0.0.1:1": "unreachable: connection refused", "127.0.0.1:2": "\(refusal)"])
    }

    @Test func everyAttemptButTheLastLeavesTimeForAnother() {
        var plan = AttemptPlan(attempts: 3)
        #expect(plan.budget(remaining: .seconds(2)) == .seconds(1))
        #expect(plan.budget(remaining: .milliseconds(60)) == .milliseconds(50))
        #expect(plan.budget(remaining: .milliseconds(20)) == .milliseconds(20))
        plan.began(a)
        plan.failed(a, .timedOut(budget: .seconds(1)))
        plan.began(b)
        plan.failed(b, .timedOut(budget: .milliseconds(500)))
        #expect(plan.budget(remaining: .seconds(1)) == .seconds(1), "the last attempt takes all that remains")
        plan.began(a)
        #expect(plan.isExhausted)
        #expect(plan.lastError == nil, "timeouts are not the cluster's answer")
    }
}
