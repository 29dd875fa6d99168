/// The attempts of one call, as a value: which node each asks, whether it waits before asking,
/// how much of the remaining time it may take, and what each failed attempt met. The client asks
/// the plan and tells it what happened; the plan decides nothing from message text.
struct AttemptPlan {
    /// Why one attempt did not end the call.
    enum Failure: CustomStringConvertible {
        /// No connection, or it broke.
        case unreachable(String)
        /// No answer within the attempt's share of the deadline.
        case timedOut(budget: Duration)
        /// The cluster answered 503 or another 5xx.
        case refused(CacheClientError)
        /// No connection permit to the node came free in time.
        case poolExhausted(CacheClientError)

        var description: String {
            switch self {
            case .unreachable(let reason): "unreachable: \(reason)"
            case .timedOut(let budget): "no answer within \(budget.milliseconds) ms"
            case .refused(let error), .poolExhausted(let error): "\(error)"
            }
        }
    }

    /// Attempts allowed in all (the first and the retries).
    let attempts: Int
    /// Attempts made so far.
    private(set) var made = 0
    /// The node the last attempt asked.
    private(set) var previous: NodeAddress?
    /// Nodes that failed in this call, and how each failed last.
    private var failedNodes: [NodeAddress: Failure] = [:]
    private var last: (node: NodeAddress, failure: Failure)?
    /// The last error the cluster or the pool gave, if any: what the call throws when it gives up
    /// before its deadline.
    private(set) var lastError: CacheClientError?

    init(attempts: Int) {
        precondition(attempts >= 1, "AttemptPlan: \(attempts) attempts")
        self.attempts = attempts
    }

    var isExhausted: Bool { made >= attempts }

    /// The best candidate that has not failed in this call; when every one has, the best again.
    func node(from candidates: [NodeAddress]) -> NodeAddress {
        precondition(!candidates.isEmpty, "AttemptPlan: no candidate node")
        return candidates.first { failedNodes[$0] == nil } ?? candidates[0]
    }

    /// Whether to back off before asking `node`: moving on to another node after one could not be
    /// reached costs no wait; asking the same node again, or after the cluster itself refused (or
    /// did not answer in time), waits.
    func waits(before node: NodeAddress) -> Bool {
        guard made > 0, let previous else { return false }
        if node == previous { return true }
        if case .unreachable = failedNodes[previous] { return false }
        return true
    }

    /// The time the next attempt may take: a node that hangs must leave time to ask another, so every
    /// attempt but the last gets at most half of what remains (and no less than 50 ms of it).
    func budget(remaining: Duration) -> Duration {
        made == attempts - 1 ? remaining : max(remaining / 2, min(remaining, .milliseconds(50)))
    }

    mutating func began(_ node: NodeAddress) {
        precondition(!isExhausted, "AttemptPlan: an attempt past the last")
        made += 1
        previous = node
    }

    mutating func failed(_ node: NodeAddress, _ failure: Failure) {
        precondition(previous == node, "AttemptPlan: a failure of a node not asked last")
        failedNodes[node] = failure
        last = (node, failure)
        switch failure {
        case .refused(let error), .poolExhausted(let error): lastError = error
        case .unreachable, .timedOut: break
        }
    }

    /// The last failure, for a timeout's message.
    var lastFailure: String? {
        guard let last else { return nil }
        if case .poolExhausted = last.failure { return "\(last.failure)" }
        return "\(last.node): \(last.failure)"
    }

    /// Every node tried and how it failed last (for `noReachableNode`).
    var tried: [String: String] {
        Dictionary(uniqueKeysWithValues: failedNodes.map { ($0.key.description, $0.value.description) })
    }
}
