import CacheCore
import Metrics
import Prometheus
import Synchronization

/// The HTTP routes, as metrics and logs name them.
public enum RouteName: String, CaseIterable, Sendable {
    case get, put, delete, stats, health, ready, metrics, cluster
    case clusterStats = "cluster_stats"
    case leave, forget, plan, unknown
}

/// A node's metrics, in its own Prometheus registry so that several nodes can share a process.
///
/// Request counters and latency histograms are recorded per request through swift-metrics handles
/// created once up front (no lookup on the hot path). The store's counters are copied in when
/// `/metrics` is scraped, so the hot path pays nothing for them.
public final class NodeMetrics: Sendable {
    /// The statuses the node answers with; anything else is counted as `other`.
    static let statuses = [200, 400, 404, 405, 413, 500, 503]

    public let registry: PrometheusCollectorRegistry
    private let requests: [Metrics.Counter]  // [route][status]
    private let durations: [Metrics.Timer]  // [route]

    private let entries: Metrics.Gauge
    private let estimatedBytes: Metrics.Gauge
    private let allocatedBytes: Metrics.Gauge
    private let memoryLimitBytes: Metrics.Gauge
    private let uptimeSeconds: Metrics.Gauge
    private let storeCounters: [(name: String, counter: Metrics.Counter, read: @Sendable (StoreStatistics) -> UInt64)]
    private let exported: Mutex<[UInt64]>
    private let peerFramesReceived: Metrics.Counter
    private let peerBytesReceived: Metrics.Counter
    private let peerFramesSent: Metrics.Counter
    private let peerBytesSent: Metrics.Counter
    private let peerInvalid: Metrics.Counter
    private let peerConnectFailures: Metrics.Counter
    private let peerRefused: Metrics.Counter

    /// Creates the metrics of one node.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1),
        ]
        self.registry = registry
        var requests: [Metrics.Counter] = []
        var durations: [Metrics.Timer] = []
        for route in RouteName.allCases {
            for status in Self.statuses.map(String.init) + ["other"] {
                requests.append(
                    Metrics.Counter(
                        label: "cache_http_requests_total",
                        dimensions: [("route", route.rawValue), ("status", status)],
                        factory: factory)
                )
            }
            durations.append(
                Metrics.Timer(
                    label: "cache_http_request_duration_seconds", dimensions: [("route", route.rawValue)],
                    factory: factory)
            )
        }
        self.requests = requests
        self.durations = durations
        entries = Metrics.Gauge(label: "cache_entries", factory: factory)
        estimatedBytes = Metrics.Gauge(label: "cache_memory_estimated_bytes", factory: factory)
        allocatedBytes = Metrics.Gauge(label: "cache_memory_allocated_bytes", factory: factory)
        memoryLimitBytes = Metrics.Gauge(label: "cache_memory_limit_bytes", factory: factory)
        uptimeSeconds = Metrics.Gauge(label: "cache_uptime_seconds", factory: factory)
        let counters: [(String, @Sendable (StoreStatistics) -> UInt64)] = [
            ("cache_gets_total", { $0.gets }), ("cache_puts_total", { $0.puts }),
            ("cache_deletes_total", { $0.deletes }), ("cache_hits_total", { $0.hits }),
            ("cache_misses_total", { $0.misses }), ("cache_evictions_total", { $0.evictions }),
            ("cache_expirations_total", { $0.expirations }),
        ]
        storeCounters = counters.map {
            (name: $0.0, counter: Metrics.Counter(label: $0.0, factory: factory), read: $0.1)
        }
        exported = Mutex([UInt64](repeating: 0, count: counters.count))
        peerFramesReceived = Metrics.Counter(label: "cache_peer_frames_received_total", factory: factory)
        peerBytesReceived = Metrics.Counter(label: "cache_peer_received_bytes_total", factory: factory)
        peerFramesSent = Metrics.Counter(label: "cache_peer_frames_sent_total", factory: factory)
        peerBytesSent = Metrics.Counter(label: "cache_peer_sent_bytes_total", factory: factory)
        peerInvalid = Metrics.Counter(label: "cache_peer_connections_closed_invalid_total", factory: factory)
        peerConnectFailures = Metrics.Counter(label: "cache_peer_connect_failures_total", factory: factory)
        peerRefused = Metrics.Counter(label: "cache_peer_messages_refused_total", factory: factory)
    }

    func peerFrameReceived(bytes: Int) {
        peerFramesReceived.increment()
        peerBytesReceived.increment(by: Int64(bytes))
    }

    func peerFrameSent(bytes: Int) {
        peerFramesSent.increment()
        peerBytesSent.increment(by: Int64(bytes))
    }

    /// A peer connection closed because its bytes were not frames.
    func peerConnectionRefused() { peerInvalid.increment() }
    func peerConnectionFailed() { peerConnectFailures.increment() }
    /// A message the transport could not take (peer unreachable, queue full).
    func peerMessageRefused() { peerRefused.increment() }

    /// Records one answered request.
    @inline(__always)
    public func recordRequest(route: RouteName, status: Int, nanoseconds: Int64) {
        let routeIndex = RouteName.allCases.firstIndex(of: route)!
        let statusIndex = Self.statuses.firstIndex(of: status) ?? Self.statuses.count
        requests[routeIndex * (Self.statuses.count + 1) + statusIndex].increment()
        durations[routeIndex].recordNanoseconds(nanoseconds)
    }

    /// The Prometheus text exposition, after copying in the store's current figures.
    public func exposition(statistics: StoreStatistics, allocated: Int?, memoryLimit: Int?, uptime: Duration) -> [UInt8]
    {
        entries.record(statistics.entries)
        estimatedBytes.record(statistics.estimatedBytes)
        if let allocated { allocatedBytes.record(allocated) }
        memoryLimitBytes.record(memoryLimit ?? 0)
        uptimeSeconds.record(Double(uptime.components.seconds))
        exported.withLock { last in
            for (index, entry) in storeCounters.enumerated() {
                let current = entry.read(statistics)
                if current > last[index] { entry.counter.increment(by: Int64(current - last[index])) }
                last[index] = current
            }
        }
        return registry.emitToBuffer()
    }
}
