import CacheCore
import Foundation
import Synchronization

/// The HTTP routes, as metrics and logs name them.
public enum RouteName: String, CaseIterable, Sendable {
    case get, put, delete, stats, health, ready, metrics, cluster
    case clusterStats = "cluster_stats"
    case leave, forget, plan, ui
    case uiEvents = "ui_events"
    case unknown
}

/// A node's metrics and their Prometheus text exposition.
///
/// The exposition follows what well-run exporters do (node exporter, the Redis exporter): a `# HELP`
/// and `# TYPE` line for every family, families and series in a fixed order, a labelled series only
/// once it has been used (an idle node shows no row of zeros per route and status), units in the
/// names, and the `process_*` family every Prometheus client exports. Request counters and latency
/// histograms are atomics recorded on the request path; everything else is read when `/metrics` is
/// scraped, so the request path pays nothing for it.
///
/// (swift-prometheus emits families in its dictionary's order, which changes from process to
/// process, and creates every labelled series up front; hence this small writer.)
public final class NodeMetrics: Sendable {
    /// The statuses the node answers with; anything else is counted as `other`.
    static let statuses = [200, 202, 400, 401, 403, 404, 405, 408, 409, 413, 500, 503]
    /// Request latency buckets, seconds.
    static let requestBuckets: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1,
    ]
    /// Log sync latency buckets, seconds.
    static let syncBuckets: [Double] = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1]

    private let requests: [Counter]  // [route][status]
    private let durations: [Histogram]  // [route]
    private let peerFramesReceived = Counter()
    private let peerBytesReceived = Counter()
    private let peerFramesSent = Counter()
    private let peerWrites = Counter()
    private let peerBytesSent = Counter()
    private let peerInvalid = Counter()
    private let peerAuthenticationFailures = Counter()
    private let httpTimeouts = Counter()
    private let respCommands = Counter()
    private let respErrors = Counter()
    private let respConnectionsOpen = Atomic<Int>(0)
    private let respConnectionsTotal = Counter()
    private let respAuthenticationFailures = Counter()
    private let peerConnectFailures = Counter()
    private let peerRefused = Counter()
    private let logSyncs = Histogram(buckets: NodeMetrics.syncBuckets)
    /// When the process started, seconds since the epoch.
    private let startTime: Double

    public init() {
        requests = (0..<(RouteName.allCases.count * (Self.statuses.count + 1))).map { _ in Counter() }
        durations = RouteName.allCases.map { _ in Histogram(buckets: Self.requestBuckets) }
        startTime = ProcessMetrics.startTime() ?? Date().timeIntervalSince1970
    }

    // MARK: Recording

    func peerFrameReceived(bytes: Int) {
        peerFramesReceived.add(1)
        peerBytesReceived.add(UInt64(bytes))
    }

    func peerFrameSent(bytes: Int) {
        peerFramesSent.add(1)
        peerBytesSent.add(UInt64(bytes))
    }

    /// Frames written to a peer left in one flush (one write to its socket).
    func peerFlushed() {
        peerWrites.add(1)
    }

    /// A peer connection closed because its bytes were not frames.
    func peerConnectionRefused() { peerInvalid.add(1) }
    /// A client connection closed by its read or idle timeout.
    func httpConnectionTimedOut() { httpTimeouts.add(1) }
    /// A Redis-protocol command answered (`failed`: with an error line).
    func respCommandAnswered(failed: Bool) {
        respCommands.add(1)
        if failed { respErrors.add(1) }
    }
    func respConnectionOpened() {
        respConnectionsOpen.add(1, ordering: .relaxed)
        respConnectionsTotal.add(1)
    }
    func respConnectionClosed() { respConnectionsOpen.subtract(1, ordering: .relaxed) }
    /// A Redis-protocol `AUTH` (or `HELLO … AUTH`) whose password is no client token.
    func respAuthenticationFailed() { respAuthenticationFailures.add(1) }
    /// Redis-protocol connections open now, and opened since start.
    var respConnections: (open: Int, total: UInt64) {
        (respConnectionsOpen.load(ordering: .relaxed), respConnectionsTotal.value)
    }
    /// Redis-protocol commands answered since start, and how many of them with an error.
    var respCommandCounts: (answered: UInt64, failed: UInt64) { (respCommands.value, respErrors.value) }
    /// A peer connection closed because it did not prove it holds the cluster's secret.
    func peerAuthenticationFailed() { peerAuthenticationFailures.add(1) }
    func peerConnectionFailed() { peerConnectFailures.add(1) }
    /// A message the transport could not take (peer unreachable, queue full).
    func peerMessageRefused() { peerRefused.add(1) }
    /// One `fdatasync` of the log, and how long it took.
    func logSynced(nanoseconds: Int64) { logSyncs.record(nanoseconds: nanoseconds) }

    /// Records one answered request.
    @inline(__always)
    public func recordRequest(route: RouteName, status: Int, nanoseconds: Int64) {
        let routeIndex = RouteName.allCases.firstIndex(of: route)!
        let statusIndex = Self.statuses.firstIndex(of: status) ?? Self.statuses.count
        requests[routeIndex * (Self.statuses.count + 1) + statusIndex].add(1)
        durations[routeIndex].record(nanoseconds: nanoseconds)
    }

    /// Requests of `route` answered with `status` since start (`nil`: with a status not listed).
    func answered(_ route: RouteName, status: Int?) -> UInt64 {
        let routeIndex = RouteName.allCases.firstIndex(of: route)!
        let statusIndex = status.flatMap { Self.statuses.firstIndex(of: $0) } ?? Self.statuses.count
        return requests[routeIndex * (Self.statuses.count + 1) + statusIndex].value
    }

    /// How long `route`'s answers took since start: answers at or below each of `requestBuckets`
    /// (cumulative), and all answers.
    func latency(_ route: RouteName) -> (cumulative: [UInt64], count: UInt64) {
        let histogram = durations[RouteName.allCases.firstIndex(of: route)!]
        return (histogram.cumulative, histogram.count)
    }

    // MARK: Exposition

    /// What the node's loop knows when `/metrics` is scraped.
    struct Snapshot: Sendable {
        var statistics = StoreStatistics()
        var allocatedBytes: Int?
        var residentBytes: Int?
        var memoryLimitBytes: Int?
        var uptime = Duration.zero
        var membersByStatus: [String: Int] = [:]
        var handoffBacklog = 0
        var requestsInFlight = 0
        var logBytes: Int?
        var diskFailed = false
        var ready = false
        var clockAhead = false
        var httpConnectionsOpen = 0
        var httpConnectionsRefused: UInt64 = 0
        var peerConnectionsOpen = 0
        var peerConnectionsRefused: UInt64 = 0
    }

    /// The Prometheus text exposition (format 0.0.4).
    func exposition(_ snapshot: Snapshot) -> [UInt8] {
        var out = Exposition()
        let statistics = snapshot.statistics

        out.family("cache_http_requests_total", .counter, "HTTP requests answered, by route and status.")
        for (routeIndex, route) in RouteName.allCases.enumerated() {
            for (statusIndex, status) in (Self.statuses.map(String.init) + ["other"]).enumerated() {
                let value = requests[routeIndex * (Self.statuses.count + 1) + statusIndex].value
                if value > 0 {
                    out.sample("cache_http_requests_total", [("route", route.rawValue), ("status", status)], value)
                }
            }
        }
        out.family(
            "cache_http_request_duration_seconds", .histogram, "Time from a request's head to its answer, by route.")
        for (index, route) in RouteName.allCases.enumerated() where durations[index].count > 0 {
            out.histogram("cache_http_request_duration_seconds", [("route", route.rawValue)], durations[index])
        }

        out.single(
            "cache_entries", .gauge, "Values held, including expired ones not yet reclaimed.", statistics.entries)
        out.single(
            "cache_tombstones", .gauge, "Deletion markers held until every replica has them.", statistics.tombstones)
        let storeCounters: [(String, String, UInt64)] = [
            ("cache_gets_total", "Client reads coordinated by this node.", statistics.gets),
            ("cache_puts_total", "Client writes coordinated by this node.", statistics.puts),
            ("cache_deletes_total", "Client deletes coordinated by this node.", statistics.deletes),
            ("cache_hits_total", "Client reads that found a live value.", statistics.hits),
            ("cache_misses_total", "Client reads that found nothing.", statistics.misses),
            ("cache_evictions_total", "Values removed to stay within MAX_SIZE or MAX_MEMORY_MB.", statistics.evictions),
            ("cache_expirations_total", "Values removed because their time to live passed.", statistics.expirations),
        ]
        for (name, help, value) in storeCounters { out.single(name, .counter, help, value) }
        out.single(
            "cache_memory_estimated_bytes", .gauge, "The store's own estimate of its entries' size.",
            statistics.estimatedBytes)
        if let allocated = snapshot.allocatedBytes {
            out.single("cache_memory_allocated_bytes", .gauge, "Bytes allocated, from jemalloc.", allocated)
        }
        if let resident = snapshot.residentBytes {
            out.single(
                "cache_memory_resident_bytes", .gauge, "Bytes resident in the allocator, from jemalloc.", resident)
        }
        out.single(
            "cache_memory_limit_bytes", .gauge, "MAX_MEMORY_MB in bytes (0: no limit).", snapshot.memoryLimitBytes ?? 0)
        out.single(
            "cache_uptime_seconds", .gauge, "Seconds since the node started.",
            (snapshot.uptime.secondsValue * 1000).rounded() / 1000)
        out.single(
            "cache_ready", .gauge, "1 when the node takes traffic (as GET /ready answers 200).", snapshot.ready ? 1 : 0)
        out.single(
            "cache_requests_in_flight", .gauge, "Client requests this node is coordinating.", snapshot.requestsInFlight)

        out.family("cache_cluster_members", .gauge, "Members this node knows, by the state it sees them in.")
        for state in ["alive", "suspect", "dead", "left"] {
            out.sample("cache_cluster_members", [("state", state)], snapshot.membersByStatus[state] ?? 0)
        }
        out.single(
            "cache_handoff_backlog", .gauge, "Writes held for replicas that were down, waiting to be handed over.",
            snapshot.handoffBacklog)
        let clusterCounters: [(String, String, UInt64)] = [
            (
                "cache_handoffs_delivered_total", "Held writes a returning replica acknowledged.",
                statistics.handoffsDelivered
            ),
            ("cache_read_repairs_total", "Stale replicas brought up to date by a read.", statistics.readRepairs),
            (
                "cache_anti_entropy_rounds_total", "Digest exchanges started with another replica.",
                statistics.antiEntropyRounds
            ),
            (
                "cache_anti_entropy_keys_pushed_total", "Entries pushed to a replica that lacked them.",
                statistics.antiEntropyKeysPushed
            ),
            (
                "cache_unavailable_total", "Client requests answered 503: the consistency level was not met.",
                statistics.unavailable
            ),
        ]
        for (name, help, value) in clusterCounters { out.single(name, .counter, help, value) }

        let peerCounters: [(String, String, UInt64)] = [
            ("cache_peer_frames_received_total", "Frames read from other nodes.", peerFramesReceived.value),
            ("cache_peer_received_bytes_total", "Bytes read from other nodes.", peerBytesReceived.value),
            ("cache_peer_frames_sent_total", "Frames written to other nodes.", peerFramesSent.value),
            (
                "cache_peer_flushes_total",
                "Writes to other nodes: the frames one step makes for a peer leave together.", peerWrites.value
            ),
            ("cache_peer_sent_bytes_total", "Bytes written to other nodes.", peerBytesSent.value),
            (
                "cache_peer_connections_closed_invalid_total",
                "Peer connections closed because their bytes were not frames.",
                peerInvalid.value
            ),
            (
                "cache_peer_authentication_failures_total",
                "Peer connections closed before reaching the node: no handshake, an unknown secret, or a record that failed authentication.",
                peerAuthenticationFailures.value
            ),
            (
                "cache_peer_connect_failures_total", "Failed attempts to connect to another node.",
                peerConnectFailures.value
            ),
            (
                "cache_peer_messages_refused_total", "Messages dropped: the peer was unreachable or its queue full.",
                peerRefused.value
            ),
        ]
        for (name, help, value) in peerCounters { out.single(name, .counter, help, value) }
        out.single(
            "cache_answers_shed_total", .counter,
            "Answers not held back for the log, its queue full: writes refused, reads left to be asked again.",
            statistics.answersShed)
        out.single(
            "cache_reads_withheld_total", .counter,
            "Replica reads not answered while the log had failed and the key's entry was not durable.",
            statistics.readsWithheld)

        // Trust: what was refused, and why (docs/security.md).
        let trustCounters: [(String, String, UInt64)] = [
            (
                "cache_versions_refused_total",
                "Versions from peers refused for being ahead of this node's clock by more than MAX_CLOCK_OFFSET_MS.",
                statistics.versionsRefused
            ),
            (
                "cache_peer_messages_ignored_total", "Peer messages ignored for naming this node as their sender.",
                statistics.peerMessagesIgnored
            ),
            (
                "cache_writes_refused_clock_total",
                "Client writes refused while this node's clock ran ahead of most members'.",
                statistics.writesRefusedForClock
            ),
            (
                "cache_writes_delayed_clock_total",
                "Client writes held after the start until the clock could not repeat a version made before it.",
                statistics.writesDelayedForClock
            ),
            (
                "cache_writes_past_deadline_total",
                "Client writes not made: the deadline their client gave (X-Cache-Deadline) had passed.",
                statistics.writesPastDeadline
            ),
            (
                "cache_http_connections_refused_total", "Client connections closed at once: MAX_CONNECTIONS reached.",
                snapshot.httpConnectionsRefused
            ),
            (
                "cache_http_connections_timed_out_total",
                "Client connections closed by REQUEST_READ_TIMEOUT_MS (408) or IDLE_TIMEOUT_MS.", httpTimeouts.value
            ),
            (
                "cache_peer_connections_refused_total", "Peer connections closed at once: MAX_CONNECTIONS reached.",
                snapshot.peerConnectionsRefused
            ),
        ]
        for (name, help, value) in trustCounters { out.single(name, .counter, help, value) }
        let respCounters: [(String, String, UInt64)] = [
            ("cache_resp_commands_total", "Redis-protocol commands answered.", respCommands.value),
            ("cache_resp_errors_total", "Redis-protocol commands answered with an error line.", respErrors.value),
            ("cache_resp_connections_total", "Redis-protocol connections opened.", respConnectionsTotal.value),
            (
                "cache_resp_authentication_failures_total", "Redis-protocol AUTH attempts with no matching token.",
                respAuthenticationFailures.value
            ),
        ]
        for (name, help, value) in respCounters { out.single(name, .counter, help, value) }
        out.single(
            "cache_resp_connections_open", .gauge, "Redis-protocol connections open.",
            respConnectionsOpen.load(ordering: .relaxed))
        out.single(
            "cache_clock_ahead", .gauge,
            "1 while this node's clock runs ahead of most members' by more than MAX_CLOCK_OFFSET_MS (writes refused).",
            snapshot.clockAhead ? 1 : 0)
        out.single("cache_http_connections_open", .gauge, "Client connections open.", snapshot.httpConnectionsOpen)
        out.single(
            "cache_peer_connections_open", .gauge, "Peer connections accepted and open.", snapshot.peerConnectionsOpen)

        if let logBytes = snapshot.logBytes {
            out.single("cache_wal_bytes", .gauge, "Bytes in the write-ahead log's segments.", logBytes)
            out.single(
                "cache_wal_disk_failed", .gauge, "1 when the log's disk failed and writes are refused.",
                snapshot.diskFailed ? 1 : 0)
            out.family("cache_wal_sync_duration_seconds", .histogram, "Time each fdatasync of the log took.")
            out.histogram("cache_wal_sync_duration_seconds", [], logSyncs)
        }

        ProcessMetrics.write(into: &out, startTime: startTime)
        return out.bytes
    }
}

/// A counter recorded from any thread.
final class Counter: Sendable {
    private let atomic = Atomic<UInt64>(0)

    func add(_ amount: UInt64) { atomic.add(amount, ordering: .relaxed) }

    var value: UInt64 { atomic.load(ordering: .relaxed) }
}

/// A histogram of durations with fixed buckets (seconds), recorded from any thread.
final class Histogram: Sendable {
    let bounds: [Double]
    private let boundsNanoseconds: [Int64]
    private let buckets: [Counter]
    private let sumNanoseconds = Counter()
    private let total = Counter()

    init(buckets: [Double]) {
        precondition(buckets == buckets.sorted(), "histogram buckets must ascend")
        bounds = buckets
        boundsNanoseconds = buckets.map { Int64($0 * 1e9) }
        self.buckets = buckets.map { _ in Counter() }
    }

    func record(nanoseconds: Int64) {
        let value = max(0, nanoseconds)
        if let index = boundsNanoseconds.firstIndex(where: { value <= $0 }) { buckets[index].add(1) }
        sumNanoseconds.add(UInt64(value))
        total.add(1)
    }

    var count: UInt64 { total.value }
    var sumSeconds: Double { Double(sumNanoseconds.value) / 1e9 }
    /// Observations at or below each bound (cumulative, as Prometheus wants them).
    var cumulative: [UInt64] {
        var running: UInt64 = 0
        return buckets.map { bucket in
            running += bucket.value
            return running
        }
    }
}

/// Builds a text exposition.
struct Exposition {
    enum Kind: String {
        case counter, gauge, histogram
    }

    private(set) var text = ""

    var bytes: [UInt8] { Array(text.utf8) }

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func single(_ name: String, _ kind: Kind, _ help: String, _ value: some Numeric & CustomStringConvertible)
    {
        family(name, kind, help)
        sample(name, [], value)
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: some Numeric & CustomStringConvertible)
    {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " \(Self.format(value))\n"
    }

    mutating func histogram(_ name: String, _ labels: [(String, String)], _ histogram: Histogram) {
        for (bound, count) in zip(histogram.bounds, histogram.cumulative) {
            sample(name + "_bucket", labels + [("le", Self.format(bound))], count)
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], histogram.count)
        sample(name + "_sum", labels, histogram.sumSeconds)
        sample(name + "_count", labels, histogram.count)
    }

    static func format(_ value: some CustomStringConvertible) -> String {
        if let double = value as? Double {
            if double == double.rounded(), abs(double) < 1e15 { return String(Int64(double)) }
            return "\(double)"
        }
        return value.description
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// The `process_*` family every Prometheus client library exports, read from `/proc/self`.
enum ProcessMetrics {
    static func write(into out: inout Exposition, startTime: Double) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        if let fields = stat(), fields.count > 23, ticks > 0 {
            // Fields after the command's closing parenthesis: utime is 14th, stime 15th, vsize 23rd,
            // rss 24th (man 5 proc), counting from 1 at the pid.
            let cpu = (Double(fields[11]) ?? 0) / ticks + (Double(fields[12]) ?? 0) / ticks
            out.single("process_cpu_seconds_total", .counter, "User and system CPU time spent, seconds.", cpu)
            out.single(
                "process_virtual_memory_bytes", .gauge, "Virtual memory size in bytes.", Int(fields[20]) ?? 0)
            out.single(
                "process_resident_memory_bytes", .gauge, "Resident memory size in bytes.",
                (Int(fields[21]) ?? 0) * pageSize)
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            out.single("process_open_fds", .gauge, "Open file descriptors.", descriptors.count)
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            out.single(
                "process_max_fds", .gauge, "The most file descriptors the process may open.", Int(limit.rlim_cur))
        }
        out.single(
            "process_start_time_seconds", .gauge, "Start time of the process since the Unix epoch, seconds.",
            (startTime * 1000).rounded() / 1000)
    }

    /// The fields of `/proc/self/stat` after the command name.
    private static func stat() -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// When this process started, from `/proc/self/stat` and the boot time in `/proc/stat`.
    static func startTime() -> Double? {
        guard let fields = stat(), fields.count > 19, let startTicks = Double(fields[19]),
            let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return boot + startTicks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
