import CacheCore

/// A node alone (no seeds), run by the one `NodeRuntime` the way the server runs it: log records
/// are written at once and become durable as soon as the node asks for a sync (unless the test holds
/// the disk back or makes it fail), and time moves only when the test moves it.
struct StandaloneNode {
    /// The log device: decodes what it is given, answers at once.
    struct Disk: LogDevice {
        /// Every record the node appended, decoded.
        var appended: [WALRecord] = []
        var snapshots: [LogSnapshot] = []
        /// While set, syncs are not answered (the test releases them).
        var holdSyncs = false
        var syncsHeld: [UInt64] = []
        /// While set, every write and sync fails with this reason, and so does a repair.
        var failure: String?
        /// Repairs asked for.
        var repairs = 0

        mutating func append(sequence: UInt64, bytes: [UInt8]) -> ClusterNode.Input? {
            if let failure { return .logFailed(reason: failure) }
            if case .record(let record, _) = bytes.withUnsafeBytes({ WALFormat.decode($0, at: 0) }) {
                appended.append(record)
            }
            return .logWritten(upTo: sequence)
        }

        mutating func sync(upTo sequence: UInt64) -> ClusterNode.Input? {
            if let failure { return .logFailed(reason: failure) }
            if holdSyncs {
                syncsHeld.append(sequence)
                return nil
            }
            return .logSynced(upTo: sequence)
        }

        mutating func writeSnapshot(_ snapshot: LogSnapshot) -> ClusterNode.Input? {
            snapshots.append(snapshot)
            return nil
        }

        mutating func repair() -> ClusterNode.Input? {
            repairs += 1
            if let failure { return .logFailed(reason: failure) }
            return .logRepaired(keptSequence: appended.last?.sequence ?? 0)
        }
    }

    /// Links to nobody, and a timer the test fires by hand.
    struct Nowhere: PeerLinks, NodeTimer {
        mutating func send(_ message: PeerMessage, to address: String) {}
        mutating func set(_ deadline: Instant) {}
    }

    /// Replies by request number, and the keys evicted.
    struct Host: NodeHost {
        var replies: [UInt64: ClusterNode.ClientReply] = [:]
        var evicted: [[UInt8]] = []

        mutating func reply(_ reply: ClusterNode.ClientReply) { replies[reply.request] = reply }

        mutating func observe(_ event: ClusterNode.Effect) {
            if case .evicted(let key) = event { evicted.append(key) }
        }
    }

    var runtime: NodeRuntime<Nowhere, Disk, Nowhere, Host>
    var now: Instant
    private var nextRequest: UInt64 = 1

    init(
        limits: StoreLimits = StoreLimits(), policy: SyncPolicy? = .always, seed: UInt64 = 1,
        defaultTimeToLive: Duration? = nil, now: Instant, recovered: Recovery.Outcome? = nil,
        compaction: CompactionPolicy = CompactionPolicy()
    ) {
        var configuration = ClusterNode.Configuration()
        configuration.limits = limits
        configuration.defaultTimeToLive = defaultTimeToLive
        configuration.reportsEvictedKeys = true
        configuration.compaction = compaction
        self.now = now
        let node = ClusterNode(
            me: NodeID("solo"), address: "solo:7000", configuration: configuration, seed: seed, recovered: recovered,
            logPolicy: policy, now: now)
        runtime = NodeRuntime(node: node, links: Nowhere(), log: Disk(), timer: Nowhere(), host: Host())
        runtime.start(seeds: [], now: now)
    }

    var node: ClusterNode { runtime.node }
    var replies: [UInt64: ClusterNode.ClientReply] { runtime.host.replies }
    var appended: [WALRecord] { runtime.log.appended }
    var snapshots: [LogSnapshot] { runtime.log.snapshots }
    var evicted: [[UInt8]] { runtime.host.evicted }
    var repairs: Int { runtime.log.repairs }
    var holdSyncs: Bool {
        get { runtime.log.holdSyncs }
        set { runtime.log.holdSyncs = newValue }
    }
    /// The disk fails every write, sync and repair with this reason while it is set.
    var diskFailure: String? {
        get { runtime.log.failure }
        set { runtime.log.failure = newValue }
    }

    /// Hands `input` to the node and carries out what it asks.
    mutating func handle(_ input: ClusterNode.Input) { runtime.handle(input, now: now) }

    /// Hands `input` to the node and returns what it asks, without carrying it out.
    mutating func effects(of input: ClusterNode.Input) -> [ClusterNode.Effect] {
        runtime.perform(now: now) { node, now in ([], node.handle(input, now: now)) }
    }

    mutating func releaseSyncs() {
        runtime.log.holdSyncs = false
        let held = runtime.log.syncsHeld
        runtime.log.syncsHeld = []
        for upTo in held { handle(.logSynced(upTo: upTo)) }
    }

    @discardableResult
    mutating func request(_ operation: ClusterNode.ClientOperation) -> ClusterNode.ClientOutcome? {
        let id = nextRequest
        nextRequest += 1
        handle(.client(request: id, operation))
        return replies[id]?.outcome
    }

    @discardableResult
    mutating func put(
        _ key: String, _ value: String, ttl: ClusterNode.TimeToLive = .never
    ) -> ClusterNode.ClientOutcome? {
        request(.put(key: Array(key.utf8), value: Array(value.utf8), ttl: ttl, consistency: nil))
    }

    @discardableResult
    mutating func put(
        _ key: [UInt8], _ value: [UInt8], ttl: ClusterNode.TimeToLive = .never
    )
        -> ClusterNode.ClientOutcome?
    {
        request(.put(key: key, value: value, ttl: ttl, consistency: nil))
    }

    mutating func get(_ key: String) -> ClusterNode.ClientOutcome? {
        request(.get(key: Array(key.utf8), consistency: nil))
    }

    /// The value read back, or `nil` when absent.
    mutating func value(_ key: String) -> String? {
        guard case .found(let entry) = get(key) else { return nil }
        return entry.value.map { String(decoding: $0, as: UTF8.self) }
    }

    @discardableResult
    mutating func delete(_ key: String) -> ClusterNode.ClientOutcome? {
        request(.delete(key: Array(key.utf8), consistency: nil))
    }

    /// Moves time forward and fires the timer.
    mutating func advance(by duration: Duration) {
        now = now.advanced(by: duration)
        handle(.timer)
    }
}

extension ClusterNode.ClientOutcome {
    var isStored: Bool {
        if case .stored = self { return true }
        return false
    }
}
