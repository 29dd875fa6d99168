import CacheCore
import Logging
import NIOHTTP1
import Synchronization

/// What the node says about individual requests: every one with `ACCESS_LOG=true`, and the slow ones
/// (over `SLOW_REQUEST_MS`) at most once a second, with how many more were not logged meanwhile.
final class RequestLog: Sendable {
    private let logger: Logger
    private let accessLog: Bool
    private let slowNanoseconds: Int64?
    /// The second (of the process's clock) of the last slow-request line, and the slow requests since.
    private let slow = Mutex<(second: Int64, unlogged: Int)>((-1, 0))
    private let started = ContinuousClock.now

    init(logger: Logger, accessLog: Bool, slowThreshold: Duration?) {
        self.logger = logger
        self.accessLog = accessLog
        slowNanoseconds = slowThreshold?.nanoseconds
    }

    /// One answered request.
    @inline(__always)
    func answered(_ head: HTTPRequestHead, route: RouteName, status: Int, nanoseconds: Int64) {
        let isSlow = slowNanoseconds.map { nanoseconds >= $0 } ?? false
        guard accessLog || isSlow else { return }
        let milliseconds = Logger.MetadataValue.number(Double(nanoseconds) / 1e6, digits: 3)
        if accessLog {
            logger.info(
                "request",
                metadata: [
                    "method": "\(head.method.rawValue)", "uri": "\(head.uri.prefix(256))", "route": "\(route.rawValue)",
                    "status": .number(status), "duration_ms": milliseconds,
                ])
        }
        guard isSlow else { return }
        let second = Int64((ContinuousClock.now - started).components.seconds)
        let unlogged: Int? = slow.withLock { state in
            if state.second == second {
                state.unlogged += 1
                return nil
            }
            defer { state = (second, 0) }
            return state.unlogged
        }
        guard let unlogged else { return }
        logger.notice(
            "slow request",
            metadata: [
                "method": "\(head.method.rawValue)", "route": "\(route.rawValue)", "status": .number(status),
                "duration_ms": milliseconds, "slow_requests_not_logged": .number(unlogged),
            ])
    }
}
