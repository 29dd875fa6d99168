import CacheCore

/// A node alone (no seeds), driven the way the server drives it: log records become durable as soon
/// as the node asks for a sync unless the test holds the disk back, and time moves only when the
/// test moves it.
struct StandaloneNode {
    var node: ClusterNode
    var now: Instant
    var replies: [UInt64: ClusterNode.ClientReply] = [:]
    /// Every record the node appended, decoded.
    var appended: [WALRecord] = []
    var snapshots: [LogSnapshot] = []
    var evicted: [[UInt8]] = []
    /// While set, appends are written but syncs are not reported.
    var holdSyncs = false
    private var syncsHeld: [UInt64] = []
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
        node = ClusterNode(
            me: NodeID("solo"), address: "solo:7000", configuration: configuration, seed: seed, recovered: recovered,
            logPolicy: policy, now: now)
        let effects = node.start(seeds: [], now: now)
        carryOut(effects)
    }

    mutating func carryOut(_ effects: [ClusterNode.Effect]) {
        var followUps: [ClusterNode.Input] = []
        for effect in effects {
            switch effect {
            case .append(let sequence, let bytes):
                if case .record(let record, _) = bytes.withUnsafeBytes({ WALFormat.decode($0, at: 0) }) {
                    appended.append(record)
                }
                followUps.append(.logWritten(upTo: sequence))
            case .sync(let upTo):
                if holdSyncs { syncsHeld.append(upTo) } else { followUps.append(.logSynced(upTo: upTo)) }
            case .writeSnapshot(let snapshot):
                snapshots.append(snapshot)
            case .reply(let reply):
                replies[reply.request] = reply
            case .evicted(let key):
                evicted.append(key)
            case .send, .setTimer, .memberStatusChanged, .repairLog, .collected, .leaveCompleted, .clockAheadChanged:
                break
            }
        }
        for input in followUps { carryOut(node.handle(input, now: now)) }
    }

    mutating func releaseSyncs() {
        holdSyncs = false
        let held = syncsHeld
        syncsHeld = []
        for upTo in held { carryOut(node.handle(.logSynced(upTo: upTo), now: now)) }
    }

    @discardableResult
    mutating func request(_ operation: ClusterNode.ClientOperation) -> ClusterNode.ClientOutcome? {
        let id = nextRequest
        nextRequest += 1
        carryOut(node.handle(.client(request: id, operation), now: now))
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
        carryOut(node.handle(.timer, now: now))
    }
}

extension ClusterNode.ClientOutcome {
    var isStored: Bool {
        if case .stored = self { return true }
        return false
    }
}
