import CacheCore

/// Why a `CacheClient` call failed. Each case says what a caller can act on; `description` is one
/// line naming the node and the figures involved.
public enum CacheClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call's deadline passed (`timeout`) after `attempts` attempts; `last` is the last failure.
    case timeout(after: Duration, attempts: Int, last: String?)
    /// The cluster answered but could not reach the consistency level: `answered` of `required`
    /// replicas took part (HTTP 503 from the coordinating node).
    case unavailable(level: String, answered: Int, required: Int, node: String)
    /// The node refused the request as invalid (HTTP 4xx); `message` is the node's own. Never retried.
    case invalidRequest(status: Int, message: String)
    /// The node answered with an error other than the above (overloaded, writes refused after a disk
    /// failure, not ready, an internal error), after every retry.
    case server(status: Int, message: String, node: String)
    /// No node could be reached: each tried node and what happened there.
    case noReachableNode(tried: [String: String])
    /// Every one of a node's connections stayed busy for `waited`.
    case poolExhausted(node: String, inUse: Int, limit: Int, waiting: Int, waited: Duration)
    /// A node answered with something that is not the API's (a proxy in the way, another service).
    case invalidResponse(node: String, detail: String)
    /// The configuration cannot work.
    case invalidConfiguration(String)
    /// The client was shut down before or during the call.
    case shutDown

    public var description: String {
        switch self {
        case .timeout(let after, let attempts, let last):
            let tail = last.map { "; last: \($0)" } ?? ""
            return "timed out after \(after.milliseconds) ms (\(attempts) attempt\(attempts == 1 ? "" : "s"))\(tail)"
        case .unavailable(let level, let answered, let required, let node):
            return "consistency level \(level) not met: \(answered) of \(required) replicas answered (via \(node))"
        case .invalidRequest(let status, let message):
            return "invalid request (HTTP \(status)): \(message)"
        case .server(let status, let message, let node):
            return "\(node) answered HTTP \(status): \(message)"
        case .noReachableNode(let tried):
            let list = tried.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            return "no node reachable (\(list))"
        case .poolExhausted(let node, let inUse, let limit, let waiting, let waited):
            return
                "no connection to \(node) free after \(waited.milliseconds) ms: \(inUse) of \(limit) in use, \(waiting) calls waiting"
        case .invalidResponse(let node, let detail):
            return "\(node) answered something that is not the cache API: \(detail)"
        case .invalidConfiguration(let message):
            return "invalid client configuration: \(message)"
        case .shutDown:
            return "the client is shut down"
        }
    }
}

extension Duration {
    /// Whole milliseconds, for messages.
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
