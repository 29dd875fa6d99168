import CacheCore

/// The checkers that read only what clients saw: no node state, so that they judge a simulated run
/// and a run of real processes (`cache-chaos`) alike.
///
/// Each takes the operations of a run and returns the guarantees they break. Times are the
/// recorder's (virtual in the simulator, the harness's clock on real processes); `slack` absorbs
/// how far the nodes' clocks may differ from the recorder's.
public enum HistoryChecker {
    // MARK: Linearizability

    /// Whether one key's operations have a legal order (Wing–Gong–Lowe). Failed and unanswered
    /// writes may have taken effect at any point after they began, or never; failed reads say
    /// nothing and are left out. The caller picks the operations the guarantee covers (quorum and
    /// `all`, a stable replica set).
    public static func linearizability(of operations: [RecordedOperation]) -> LinearizabilityChecker.Verdict {
        var register: [RegisterOperation] = []
        register.reserveCapacity(operations.count)
        for operation in operations {
            let complete = operation.outcome == .ok ? operation.complete : .distantFuture
            switch operation.kind {
            case .put(let value, _):
                register.append(RegisterOperation(invoke: operation.invoke, complete: complete, kind: .write(value)))
            case .delete:
                register.append(RegisterOperation(invoke: operation.invoke, complete: complete, kind: .write(nil)))
            case .get:
                guard operation.outcome == .ok else { continue }
                register.append(
                    RegisterOperation(invoke: operation.invoke, complete: complete, kind: .read(operation.read)))
            }
        }
        return LinearizabilityChecker.check(register)
    }

    // MARK: Lost writes and resurrections

    /// Every acknowledged write survives: after the cluster healed and converged, each key's final
    /// value (`finals`, read at `all` from a converged cluster) is one some write could have left
    /// last, given real time. A write `w` (acknowledged, refused or unanswered) can follow an
    /// acknowledged write `a` unless `w` was answered more than `slack` before `a` began (writes at
    /// `one` through different nodes are ordered by the nodes' clocks). An absent final value is also what any put with a TTL leaves once it
    /// expired. `excused` writes (those the failure budget does not cover) are not checked.
    public static func lostWrites(
        _ operations: [RecordedOperation], finals: [String: Int?], slack: Duration,
        excused: (RecordedOperation) -> Bool = { _ in false }
    ) -> [Violation] {
        var violations: [Violation] = []
        let byKey = Dictionary(grouping: operations.filter(\.isWrite), by: \.key)
        for (key, final) in finals.sorted(by: { $0.key < $1.key }) {
            let writes = byKey[key] ?? []
            // The writes that could have left `final`.
            let leavers = writes.filter { write in
                switch write.kind {
                case .put(let value, let ttl): return value == final || (final == nil && ttl != nil)
                case .delete: return final == nil
                case .get: return false
                }
            }
            if let final, leavers.isEmpty {
                violations.append(Violation(.lostWrite, "\(key) holds v\(final), which no client wrote", key: key))
                continue
            }
            for acknowledged in writes where acknowledged.outcome == .ok && !excused(acknowledged) {
                // A write's version is fixed before its answer comes: one answered (acknowledged or
                // refused) more than `slack` before `acknowledged` began cannot outrank it. One never
                // answered may have been versioned at any time.
                let survives = leavers.contains { leaver in
                    leaver.complete.advanced(by: slack) >= acknowledged.invoke
                }
                guard !survives else { continue }
                let seen = final.map { "v\($0)" } ?? "nothing"
                if case .delete = acknowledged.kind {
                    violations.append(
                        Violation(
                            .resurrection,
                            "\(key) came back as \(seen) after a delete at \(acknowledged.level) was acknowledged",
                            key: key, at: acknowledged.invoke))
                } else {
                    violations.append(
                        Violation(
                            .lostWrite,
                            "\(key) converged to \(seen) but \(describe(acknowledged)) was acknowledged", key: key,
                            at: acknowledged.invoke))
                }
            }
        }
        return violations
    }

    // MARK: Time to live

    /// No value is served after its TTL ended, none is served with a longer TTL than it was written
    /// with, and none written with a TTL is served without one. A put's expiry is fixed when its
    /// coordinator takes it, between the put's invocation and its completion.
    public static func timeToLive(_ operations: [RecordedOperation], slack: Duration) -> [Violation] {
        var puts: [Int: RecordedOperation] = [:]
        for operation in operations {
            if case .put(let value, _) = operation.kind { puts[value] = operation }
        }
        var violations: [Violation] = []
        for read in operations where read.outcome == .ok {
            guard case .get = read.kind, let value = read.read, let put = puts[value],
                case .put(_, let ttl) = put.kind
            else { continue }
            guard let ttl else {
                if case .remaining(let remaining) = read.timeToLive {
                    violations.append(
                        Violation(
                            .timeToLive,
                            "v\(value) of \(read.key) was written to live for ever and read with \(remaining) left",
                            key: read.key, at: read.invoke))
                }
                continue
            }
            // The latest the value may expire: its put answered at the latest TTL's start.
            let latestExpiry = put.complete == .distantFuture ? nil : put.complete.advanced(by: ttl)
            if let latestExpiry, read.invoke > latestExpiry.advanced(by: slack) {
                violations.append(
                    Violation(
                        .timeToLive,
                        "v\(value) of \(read.key) was served \(latestExpiry.duration(to: read.invoke)) after its TTL of \(ttl) ended",
                        key: read.key, at: read.invoke))
                continue
            }
            switch read.timeToLive {
            case .never:
                violations.append(
                    Violation(
                        .timeToLive, "v\(value) of \(read.key) was written with a TTL of \(ttl) and read without one",
                        key: read.key, at: read.invoke))
            case .remaining(let remaining):
                // Whole seconds, rounded up: one more second than the exact remainder at most.
                guard let latestExpiry else { break }
                let longest = read.invoke.duration(to: latestExpiry) + .seconds(1) + slack
                if remaining > longest {
                    violations.append(
                        Violation(
                            .timeToLive,
                            "v\(value) of \(read.key) was read with \(remaining) to live, more than the \(ttl) it was written with allows",
                            key: read.key, at: read.invoke))
                }
            case nil:
                break
            }
        }
        return violations
    }

    // MARK: Levels, refusals, timeouts

    /// A success names at least its level's count of replicas: no read or write succeeds at a level
    /// while more of its key's replicas than the level allows were out of its coordinator's reach
    /// for the whole request. `unreachable` gives, for an operation, the replicas that were (down,
    /// paused or cut off from the coordinator) from its invocation to its completion.
    public static func levels(
        _ operations: [RecordedOperation], replicationFactor: Int, unreachable: (RecordedOperation) -> Int
    ) -> [Violation] {
        var violations: [Violation] = []
        for operation in operations where operation.outcome == .ok {
            let required = operation.level.required(of: replicationFactor)
            let reachable = replicationFactor - unreachable(operation)
            if reachable < required {
                violations.append(
                    Violation(
                        .level,
                        "\(describe(operation)) succeeded at \(operation.level) while only \(reachable) of its "
                            + "\(replicationFactor) replicas could answer",
                        key: operation.key, at: operation.invoke))
            }
        }
        return violations
    }

    /// Every refusal is a documented one: `isDocumented` judges each failed operation's `refusal`.
    public static func refusals(
        _ operations: [RecordedOperation], isDocumented: (String) -> Bool
    ) -> [Violation] {
        operations.compactMap { operation in
            guard operation.outcome == .failed, let refusal = operation.refusal, !isDocumented(refusal) else {
                return nil
            }
            return Violation(
                .refusal, "\(describe(operation)) was refused with \(refusal)", key: operation.key, at: operation.invoke
            )
        }
    }

    /// No request takes longer than `limit` to be answered, unless `excused` (its coordinator was
    /// down or paused meanwhile). Unanswered requests count as taking for ever.
    public static func timeouts(
        _ operations: [RecordedOperation], limit: Duration, excused: (RecordedOperation) -> Bool
    ) -> [Violation] {
        operations.compactMap { operation in
            let took = operation.invoke.duration(to: operation.complete)
            guard operation.outcome != .pending, took > limit, !excused(operation) else { return nil }
            let answer = operation.complete == .distantFuture ? "was never answered" : "took \(took)"
            return Violation(
                .timeout, "\(describe(operation)) \(answer) (limit \(limit))", key: operation.key, at: operation.invoke)
        }
    }

    /// One line for an operation, for messages and histories.
    public static func describe(_ operation: RecordedOperation) -> String {
        switch operation.kind {
        case .put(let value, let ttl):
            return "put v\(value) of \(operation.key)\(ttl.map { " (ttl \($0))" } ?? "") via n\(operation.node)"
        case .delete:
            return "delete of \(operation.key) via n\(operation.node)"
        case .get:
            return "get of \(operation.key) via n\(operation.node)"
        }
    }
}
