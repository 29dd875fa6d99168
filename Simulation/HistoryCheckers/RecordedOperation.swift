import CacheCore

/// One client request as its client saw it: what was asked of which node, when, and how it ended.
///
/// The simulator and `cache-chaos` record this same shape (simulated or real time), and the checkers
/// of `HistoryChecker` read either. Every put writes a value no other put writes (`value`), so that a
/// read names the write it saw.
public struct RecordedOperation: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Wrote value `value`, to expire `ttl` after the coordinator took it (`nil`: never).
        case put(value: Int, ttl: Duration?)
        case delete
        case get
    }

    public enum Outcome: Sendable, Equatable {
        /// No answer yet.
        case pending
        /// Done as asked (a read of an absent key and a delete of one are `ok` too).
        case ok
        /// Refused: the request did not take effect (a write may still have, on some replicas).
        case failed
        /// No answer came (timed out, the connection broke, the node died): a write may have taken
        /// effect or not.
        case unknown
    }

    /// What a read said of the value's time to live.
    public enum TimeToLiveSeen: Sendable, Equatable {
        /// The value never expires.
        case never
        /// It expires within this long (HTTP rounds it up to whole seconds).
        case remaining(Duration)
    }

    public var client: Int
    public var key: String
    public var kind: Kind
    public var level: ConsistencyLevel
    /// The node the request went to (its coordinator).
    public var node: Int
    public var invoke: Instant
    /// `.distantFuture` while no answer came.
    public var complete = Instant.distantFuture
    public var outcome = Outcome.pending
    /// Reads: the value seen (`nil`: absent).
    public var read: Int?
    /// Reads that found a value: what the answer said of its expiry (`nil`: not reported).
    public var timeToLive: TimeToLiveSeen?
    /// Refusals: the status and body the node answered with (`cache-chaos` only), or what broke.
    public var refusal: String?

    public init(client: Int, key: String, kind: Kind, level: ConsistencyLevel, node: Int, invoke: Instant) {
        self.client = client
        self.key = key
        self.kind = kind
        self.level = level
        self.node = node
        self.invoke = invoke
    }

    public var isWrite: Bool {
        if case .get = kind { return false }
        return true
    }

    /// The value a write wrote (`nil` for a delete), or `nil` for a read.
    public var written: Int?? {
        switch kind {
        case .put(let value, _): return .some(value)
        case .delete: return .some(nil)
        case .get: return nil
        }
    }
}

/// A guarantee broken, named by the checker that found it.
public struct Violation: Sendable, Equatable, CustomStringConvertible {
    /// The README's guarantees, one checker each.
    public enum Checker: String, Sendable, CaseIterable {
        /// An acknowledged write is not lost.
        case lostWrite = "lost write"
        /// A deleted key stays deleted.
        case resurrection = "resurrection"
        /// Quorum and `all` reads and writes of one key are linearizable.
        case linearizability = "linearizability"
        /// An expired value is never served, a TTL is never extended nor lost.
        case timeToLive = "ttl"
        /// A request that cannot meet its level says so: never a success with too few replicas.
        case level = "level"
        /// A refusal is one of the documented ones.
        case refusal = "refusal"
        /// No request hangs past its timeout.
        case timeout = "timeout"
        /// Replicas converge once failures heal.
        case convergence = "convergence"
        /// A departure (a leave, a forget) is kept: after every node restarts, each still holds the
        /// departed member departed; a leave completes, a departed node can join again.
        case membership = "membership"
        /// The simulator's own, which read node state: durability of acknowledgments, incarnations,
        /// clocks, tombstone collection, eviction.
        case durability = "durability"
        case incarnation = "incarnation"
        case clock = "clock"
        case collection = "collection"
        case eviction = "eviction"
    }

    public var checker: Checker
    public var message: String
    /// The key whose history shows it, if one does.
    public var key: String?
    /// When the operation that shows it began, if one does.
    public var at: Instant?

    public init(_ checker: Checker, _ message: String, key: String? = nil, at: Instant? = nil) {
        self.checker = checker
        self.message = message
        self.key = key
        self.at = at
    }

    public var description: String { "\(checker.rawValue): \(message)" }
}
