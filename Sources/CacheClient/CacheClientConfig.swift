/// How a `CacheClient` reaches a cluster: where to start, how long a call may take, how hard it
/// tries.
///
/// Only `nodes` is required. The defaults suit a cluster on one network: a call gives up after
/// `timeout` however many retries it made, a refused connection moves on to the next replica at once,
/// and a node that failed is left alone for `downPeriod` (then probed in the background).
public struct CacheClientConfig: Sendable {
    /// HTTP addresses (`host:port`) to learn the cluster from; any one reachable member is enough.
    public var nodes: [String]
    /// The longest a call may take, retries included.
    public var timeout: Duration
    /// Retries after the first attempt (0: none). Only calls that are safe to repeat are retried.
    public var maximumRetries: Int
    /// The first retry's backoff ceiling; each further retry doubles it, up to `backoffCap`. The wait
    /// is drawn uniformly below the ceiling ("full jitter").
    public var backoffBase: Duration
    /// The most a backoff ceiling grows to.
    public var backoffCap: Duration
    /// Open connections kept per node at most; calls beyond it wait for one.
    public var connectionsPerNode: Int
    /// How long a call waits for one of a node's connections before failing with `poolExhausted`.
    public var poolWaitTimeout: Duration
    /// How long establishing a connection may take.
    public var connectTimeout: Duration
    /// The level asked for when a call names none (nil: the node's own default).
    public var consistency: CacheConsistency?
    /// How often the cluster's membership is read again when nothing suggests it changed.
    public var topologyRefreshInterval: Duration
    /// How long a node that refused a connection or timed out is skipped before it is probed.
    public var downPeriod: Duration
    /// The token sent with every request (`Authorization: Bearer`), for nodes with `TOKENS_FILE`:
    /// `read` for gets and the status calls, `write` for puts and deletes, `admin` for leave and forget.
    public var token: String?
    /// HTTPS to nodes with `TLS_CERT_FILE` (`nil`: plain HTTP).
    public var tls: TLS?
    /// How far a node's clock may read behind this client's (the nodes' `MAX_CLOCK_OFFSET_MS`).
    /// Each write tells its node when the client stops waiting (`X-Cache-Deadline`), and a node
    /// does not make a write past it; after a write attempt timed out, the client waits this long
    /// before it makes the write through another node, so the abandoned attempt cannot land after
    /// the retry and undo it.
    public var maximumClockOffset: Duration

    /// How the client checks the nodes' certificates.
    public struct TLS: Sendable, Equatable {
        /// A PEM file of the certificate authorities to trust (`nil`: the system's).
        public var caFile: String?

        public init(caFile: String? = nil) {
            self.caFile = caFile
        }
    }

    public init(
        nodes: [String],
        timeout: Duration = .seconds(2),
        maximumRetries: Int = 3,
        backoffBase: Duration = .milliseconds(10),
        backoffCap: Duration = .milliseconds(500),
        connectionsPerNode: Int = 16,
        poolWaitTimeout: Duration = .seconds(1),
        connectTimeout: Duration = .milliseconds(500),
        consistency: CacheConsistency? = nil,
        topologyRefreshInterval: Duration = .seconds(10),
        downPeriod: Duration = .seconds(1),
        token: String? = nil,
        tls: TLS? = nil,
        maximumClockOffset: Duration = .milliseconds(500)
    ) {
        self.nodes = nodes
        self.timeout = timeout
        self.maximumRetries = maximumRetries
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.connectionsPerNode = connectionsPerNode
        self.poolWaitTimeout = poolWaitTimeout
        self.connectTimeout = connectTimeout
        self.consistency = consistency
        self.topologyRefreshInterval = topologyRefreshInterval
        self.downPeriod = downPeriod
        self.token = token
        self.tls = tls
        self.maximumClockOffset = maximumClockOffset
    }

    /// What is wrong with this configuration, if anything.
    func validate() throws(CacheClientError) {
        func invalid(_ message: String) -> CacheClientError { .invalidConfiguration(message) }
        if nodes.isEmpty { throw invalid("nodes is empty: name at least one node as host:port") }
        for node in nodes where NodeAddress(node) == nil {
            throw invalid("node \"\(node)\" is not host:port")
        }
        if timeout <= .zero { throw invalid("timeout must be positive") }
        if maximumRetries < 0 { throw invalid("maximumRetries must be 0 or more") }
        if backoffBase < .zero || backoffCap < backoffBase { throw invalid("backoff needs 0 <= base <= cap") }
        if connectionsPerNode < 1 { throw invalid("connectionsPerNode must be at least 1") }
        if poolWaitTimeout < .zero { throw invalid("poolWaitTimeout must be 0 or more") }
        if connectTimeout <= .zero { throw invalid("connectTimeout must be positive") }
        if topologyRefreshInterval <= .zero { throw invalid("topologyRefreshInterval must be positive") }
        if downPeriod < .zero { throw invalid("downPeriod must be 0 or more") }
        if maximumClockOffset < .zero { throw invalid("maximumClockOffset must be 0 or more") }
        if let token, token.isEmpty || token.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw invalid("token must be one word without spaces")
        }
    }
}

/// How many of a key's replicas must answer: the node's `consistency` parameter.
public enum CacheConsistency: String, Sendable, CaseIterable {
    case one, quorum, all
}

/// How long a value lives.
public enum CacheTTL: Sendable, Equatable {
    /// The node's `TTL_DEFAULT`.
    case nodeDefault
    /// Until deleted or evicted.
    case never
    /// This many seconds (at least 1).
    case seconds(Int)
}

/// A node's HTTP address, `host:port` (a bracketed IPv6 host is accepted).
struct NodeAddress: Hashable, Sendable, CustomStringConvertible {
    let host: String
    let port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else { return nil }
        self.host = host
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The URL of `path` on this node, over HTTPS when `secure`.
    func url(_ path: String, secure: Bool) -> String { (secure ? "https://" : "http://") + description + path }
}
