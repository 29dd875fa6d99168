import CacheCore

/// One operation on a single-key register, as a client saw it.
public struct RegisterOperation: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Wrote a value (`nil`: deleted the key).
        case write(Int?)
        /// Read a value (`nil`: the key was absent).
        case read(Int?)
    }

    /// When the request was sent (simulation time).
    public var invoke: Instant
    /// When the answer arrived; `.distantFuture` when the outcome is unknown (timed out, node crashed).
    public var complete: Instant
    public var kind: Kind

    public init(invoke: Instant, complete: Instant, kind: Kind) {
        self.invoke = invoke
        self.complete = complete
        self.kind = kind
    }

    /// A write whose outcome is unknown may take effect at any point after it began, or never.
    var isOptional: Bool { complete == .distantFuture }
}

/// A Wing–Gong search with Lowe's memoisation (the method of Knossos and Porcupine): is there an
/// order of the operations, consistent with real time, in which every read returns the value of
/// the write before it?
public enum LinearizabilityChecker {
    /// The verdict on one key's history.
    public enum Verdict: Equatable, Sendable {
        case linearizable
        case violation
        /// The search ran out of its step budget; nothing is claimed.
        case undecided
    }

    public static func check(
        _ operations: [RegisterOperation], initial: Int? = nil, budget: Int = 500_000
    )
        -> Verdict
    {
        // Reads whose outcome is unknown carry no information.
        let operations = operations.filter { !($0.isOptional && isRead($0)) }
        guard !operations.isEmpty else { return .linearizable }
        var search = Search(operations: operations, budget: budget)
        let found = search.run(value: initial)
        if search.exhausted { return .undecided }
        return found ? .linearizable : .violation
    }

    private static func isRead(_ operation: RegisterOperation) -> Bool {
        if case .read = operation.kind { return true }
        return false
    }

    private struct Memo: Hashable {
        var done: [UInt64]
        var value: Int?
    }

    private struct Search {
        let operations: [RegisterOperation]
        var budget: Int
        var exhausted = false
        var done: [UInt64]
        var remainingRequired: Int
        var memo = Set<Memo>()

        init(operations: [RegisterOperation], budget: Int) {
            self.operations = operations
            self.budget = budget
            self.done = Array(repeating: 0, count: (operations.count + 63) / 64)
            self.remainingRequired = operations.filter { !$0.isOptional }.count
        }

        func isDone(_ index: Int) -> Bool { done[index / 64] & (1 << UInt64(index % 64)) != 0 }
        mutating func toggle(_ index: Int) { done[index / 64] ^= 1 << UInt64(index % 64) }

        mutating func run(value: Int?) -> Bool {
            if remainingRequired == 0 { return true }
            budget -= 1
            if budget <= 0 {
                exhausted = true
                return false
            }
            guard memo.insert(Memo(done: done, value: value)).inserted else { return false }
            var earliestCompletion = Instant.distantFuture
            for index in operations.indices where !isDone(index) {
                earliestCompletion = min(earliestCompletion, operations[index].complete)
            }
            for index in operations.indices where !isDone(index) && operations[index].invoke <= earliestCompletion {
                let operation = operations[index]
                let next: Int?
                switch operation.kind {
                case .write(let written):
                    next = written
                case .read(let seen):
                    guard seen == value else { continue }
                    next = value
                }
                toggle(index)
                if !operation.isOptional { remainingRequired -= 1 }
                let found = run(value: next)
                if !operation.isOptional { remainingRequired += 1 }
                toggle(index)
                if found { return true }
                if exhausted { return false }
            }
            return false
        }
    }
}
