import Metrics
import Synchronization

/// What a client counts: swift-metrics series for the application's metrics backend, and the same
/// figures as plain counters for `CacheClient.statistics`.
final class ClientMetrics: Sendable {
    /// One operation's series, made once.
    struct OperationSeries: Sendable {
        let requests: Counter
        let retries: Counter
        let duration: Metrics.Timer
        let failures: [FailureReason: Counter]
    }

    enum FailureReason: String, CaseIterable, Sendable {
        case timeout, unavailable, invalidRequest = "invalid_request", server
        case unreachable, poolExhausted = "pool_exhausted", invalidResponse = "invalid_response", cancelled
        case shutDown = "shut_down"
    }

    private let series: [CacheClient.Operation: OperationSeries]
    let poolWaitSeries: Counter
    let refreshSeries: Counter
    let markedDownSeries: Counter

    let requests = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let poolWaits = Atomic<Int>(0)
    let failovers = Atomic<Int>(0)
    let refreshes = Atomic<Int>(0)
    let markedDown = Atomic<Int>(0)

    init() {
        var series: [CacheClient.Operation: OperationSeries] = [:]
        for operation in CacheClient.Operation.allCases {
            let dimensions = [("operation", operation.rawValue)]
            var failures: [FailureReason: Counter] = [:]
            for reason in FailureReason.allCases {
                failures[reason] = Counter(
                    label: "cache_client_failures_total", dimensions: dimensions + [("reason", reason.rawValue)])
            }
            series[operation] = OperationSeries(
                requests: Counter(label: "cache_client_requests_total", dimensions: dimensions),
                retries: Counter(label: "cache_client_retries_total", dimensions: dimensions),
                duration: Metrics.Timer(
                    label: "cache_client_request_duration_seconds", dimensions: dimensions,
                    preferredDisplayUnit: .seconds),
                failures: failures)
        }
        self.series = series
        poolWaitSeries = Counter(label: "cache_client_pool_waits_total")
        refreshSeries = Counter(label: "cache_client_topology_refreshes_total")
        markedDownSeries = Counter(label: "cache_client_nodes_marked_down_total")
    }

    func started(_ operation: CacheClient.Operation) {
        series[operation]?.requests.increment()
        requests.add(1, ordering: .relaxed)
    }

    func retried(_ operation: CacheClient.Operation, failover: Bool) {
        series[operation]?.retries.increment()
        retries.add(1, ordering: .relaxed)
        if failover { failovers.add(1, ordering: .relaxed) }
    }

    func finished(_ operation: CacheClient.Operation, nanoseconds: Int64, failure: FailureReason?) {
        series[operation]?.duration.recordNanoseconds(nanoseconds)
        if let failure {
            series[operation]?.failures[failure]?.increment()
            failures.add(1, ordering: .relaxed)
        }
    }

    func waitedForPool() {
        poolWaitSeries.increment()
        poolWaits.add(1, ordering: .relaxed)
    }

    func refreshed() {
        refreshSeries.increment()
        refreshes.add(1, ordering: .relaxed)
    }

    func nodeMarkedDown() {
        markedDownSeries.increment()
        markedDown.add(1, ordering: .relaxed)
    }
}

extension CacheClient {
    /// The client's counters since it was made.
    public struct Statistics: Sendable, Equatable {
        /// Calls made (each counts once, however many attempts it took).
        public var requests: Int
        /// Attempts after a call's first.
        public var retries: Int
        /// Retries sent to another node than the attempt before.
        public var failovers: Int
        /// Calls that threw.
        public var failures: Int
        /// Calls that waited for a connection.
        public var poolWaits: Int
        /// Times the cluster's membership was read.
        public var topologyRefreshes: Int
        /// Times a node was marked down after a refused connection or a timeout.
        public var nodesMarkedDown: Int
    }

    /// The client's counters since it was made.
    public var statistics: Statistics {
        Statistics(
            requests: metrics.requests.load(ordering: .relaxed), retries: metrics.retries.load(ordering: .relaxed),
            failovers: metrics.failovers.load(ordering: .relaxed), failures: metrics.failures.load(ordering: .relaxed),
            poolWaits: metrics.poolWaits.load(ordering: .relaxed),
            topologyRefreshes: metrics.refreshes.load(ordering: .relaxed),
            nodesMarkedDown: metrics.markedDown.load(ordering: .relaxed))
    }
}
