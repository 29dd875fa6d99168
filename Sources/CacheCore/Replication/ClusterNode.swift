/// One cache node as a state machine: membership, the ring, the replica store, the write-ahead log
/// and request coordination, composed behind one interface.
///
/// Inputs are values (a client request, a peer message, a log write or sync that completed, the
/// timer firing), each with the current time; every effect leaves as a value (send a message,
/// append a log record, reply to a client, set the timer). The simulator and the server are two
/// drivers of this same type. Nothing here reads a clock, touches a file or a socket, or draws
/// randomness other than from the seeded generator it was given.
public struct ClusterNode: Sendable {
    /// Settings of a node; the defaults suit a real cluster.
    public struct Configuration: Sendable {
        /// Replicas of every key (capped at the number of key owners).
        public var replicationFactor = 3
        /// Level of writes that do not name one.
        public var writeConsistency = ConsistencyLevel.quorum
        /// Level of reads that do not name one.
        public var readConsistency = ConsistencyLevel.quorum
        /// How long a request may take before it answers that its level was not met.
        public var requestTimeout: Int64 = 1_000_000_000
        /// First wait before asking a silent replica again; doubles per attempt, with jitter.
        public var retryInitial: Int64 = 50_000_000
        /// Longest wait between two attempts to one replica.
        public var retryMaximum: Int64 = 400_000_000
        /// Ask a node beyond the key's replicas when a replica stays silent (hinted handoff).
        public var sloppyQuorum = true
        /// Time between anti-entropy exchanges with one peer.
        public var antiEntropyInterval: Int64 = 1_000_000_000
        /// Time between handoff passes over the keys this node holds but does not own.
        public var handoffInterval: Int64 = 500_000_000
        /// How long a tombstone (or an expired entry) is kept at least; then it is collected once
        /// every replica confirmed it holds it. A node that was down for longer than this must
        /// rejoin with an empty data directory, or a value it still holds could come back.
        public var tombstoneGrace: Int64 = 600_000_000_000
        /// Most keys or entries in one anti-entropy or handoff message (throttling).
        public var maximumItemsPerMessage = 128
        /// Membership and failure detection.
        public var membership = Membership.Configuration()
        /// A deliberately wrong behaviour, to prove the simulator's checkers can fail.
        public var injectedBug: InjectedBug?

        /// Deliberate bugs the simulator's tests switch on.
        public enum InjectedBug: String, Sendable, Equatable, CaseIterable {
            /// Replicas take read repairs without comparing versions.
            case repairWithoutVersionCheck = "repair-without-version-check"
            /// Replicas acknowledge writes before their log record is durable.
            case acknowledgeBeforeSync = "acknowledge-before-sync"
            /// Reads answer with the first reply instead of the newest version.
            case readFirstReply = "read-first-reply"
            /// Tombstones are collected at once, without waiting for every replica to hold them.
            case collectTombstonesEarly = "collect-tombstones-early"
        }

        public init() {}
    }

    /// A client's request, as the driver decoded it.
    public enum ClientOperation: Equatable, Sendable {
        case get(key: [UInt8], consistency: ConsistencyLevel?)
        /// `ttl` in nanoseconds from now (`nil`: never expires).
        case put(key: [UInt8], value: [UInt8], ttl: Int64?, consistency: ConsistencyLevel?)
        case delete(key: [UInt8], consistency: ConsistencyLevel?)
    }

    /// How a client's request ended.
    public enum ClientOutcome: Equatable, Sendable {
        case found(value: [UInt8], version: Version, expiresAt: Instant?)
        case notFound
        case stored(version: Version, expiresAt: Instant?)
        case deleted(existed: Bool, version: Version)
        /// The level could not be met in time: `answered` of the `required` replicas answered.
        case unavailable(level: ConsistencyLevel, answered: Int, required: Int)
    }

    /// The answer to a client, with how it was reached.
    public struct ClientReply: Equatable, Sendable {
        /// The driver's request number.
        public var request: UInt64
        public var outcome: ClientOutcome
        /// The key's replicas when the request started.
        public var replicas: [NodeID]
        /// Whether a node outside `replicas` counted towards the level (a sloppy quorum).
        public var hinted: Bool
    }

    /// What happens to the node.
    public enum Input: Equatable, Sendable {
        /// A client's request; `request` is the driver's number, echoed in the reply.
        case client(request: UInt64, ClientOperation)
        /// A message from a peer.
        case peer(PeerMessage)
        /// Every log record up to `upTo` was handed to the operating system.
        case logWritten(upTo: UInt64)
        /// Every log record up to `upTo` is on stable storage.
        case logSynced(upTo: UInt64)
        /// The log's disk failed: writes are refused until it recovers.
        case logFailed(reason: String)
        /// The timer set by the last `.setTimer` fired (or any time: it is harmless).
        case timer
    }

    /// What the driver must do.
    public enum Effect: Equatable, Sendable {
        /// Send `message` to the peer at `address`.
        case send(to: String, PeerMessage)
        /// Append a record to the log; the node says `logWritten`/`logSynced` when it is done.
        case append(sequence: UInt64, bytes: [UInt8])
        /// Answer a client.
        case reply(ClientReply)
        /// Deliver `.timer` at this instant (replaces any earlier setting).
        case setTimer(Instant)
        /// A member's status changed (for logs and metrics).
        case memberStatusChanged(NodeID, MemberStatus)
    }

    public let configuration: Configuration
    public let me: NodeID
    public let address: String
    public internal(set) var membership: Membership
    /// The ring of the members that own keys, as this node sees them.
    public internal(set) var ring: HashRing
    /// The entries this node replicates or holds for others.
    public internal(set) var store: ReplicaStore
    /// The log, or `nil` when the node keeps nothing on disk.
    public internal(set) var log: WriteAheadLog?

    var clock: HybridClock
    var random: SplitMix64
    var addresses: [NodeID: String] = [:]
    var coordinations: [UInt64: Coordination] = [:]
    var handoffs: [CacheKey: Handoff] = [:]
    var handoffRequests: [UInt64: CacheKey] = [:]
    var collections: [CacheKey: TombstoneCollection] = [:]
    var collectionRequests: [UInt64: CacheKey] = [:]
    /// Answers held back until the log record they depend on is durable, in arrival order.
    var awaitingDurability: [(sequence: UInt64, to: String, body: ReplicationBody)] = []
    var nextAntiEntropy: Instant
    var nextHandoff: Instant
    var announcedTimer: Instant?
    /// Effects of the step in progress.
    var effects: [Effect] = []
    /// Messages this node sent to itself, handled before the step ends.
    var selfInbox: [ReplicationMessage] = []

    /// A node at `now` holding what `recovered` (its log read back, oldest first) says, with a log
    /// under `logPolicy` (`nil`: nothing is persisted).
    public init(
        me: NodeID, address: String, configuration: Configuration = Configuration(), seed: UInt64,
        recovered: [WALRecord] = [], logPolicy: SyncPolicy?, now: Instant
    ) {
        self.me = me
        self.address = address
        self.configuration = configuration
        var root = SplitMix64(seed: seed)
        self.random = root.derived(stream: 1)
        self.membership = Membership(
            me: me, address: address, configuration: configuration.membership, seed: root.next(), now: now)
        self.clock = HybridClock(node: me)
        var store = ReplicaStore()
        var lastSequence: UInt64 = 0
        var logBytes = 0
        for record in recovered {
            lastSequence = max(lastSequence, record.sequence)
            if case .versioned(let key, let entry) = record.operation {
                store.apply(CacheKey(bytes: key), entry, sequence: 0)
                clock.observe(entry.version)
                logBytes += 64 + key.count + (entry.value?.count ?? 0)
            }
        }
        self.store = store
        self.log = logPolicy.map { WriteAheadLog(policy: $0, recoveredSequence: lastSequence, logBytes: logBytes) }
        self.ring = HashRing(members: [me])
        self.addresses = [me: address]
        self.nextAntiEntropy = now.advanced(byNanoseconds: configuration.antiEntropyInterval)
        self.nextHandoff = now.advanced(byNanoseconds: configuration.handoffInterval)
    }

    /// Joins the cluster through `seeds` (peer addresses).
    public mutating func start(seeds: [String], now: Instant) -> [Effect] {
        for effect in membership.join(seeds: seeds, now: now) { carryOut(effect) }
        return finishStep(now: now)
    }

    /// Handles one input at `now` and returns what the driver must do.
    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        switch input {
        case .client(let request, let operation):
            startCoordination(client: request, operation, now: now)
        case .peer(.membership(let message)):
            for effect in membership.received(message, now: now) { carryOut(effect) }
        case .peer(.replication(let message)):
            received(message, now: now)
        case .logWritten(let sequence):
            log?.writeCompleted(upTo: sequence)
            releaseDurable()
        case .logSynced(let sequence):
            log?.syncCompleted(upTo: sequence)
            releaseDurable()
        case .logFailed(let reason):
            log?.diskFailed(reason)
            failAwaitingDurability(reason: reason)
        case .timer:
            // The timer is spent: whatever the next deadline, it is set again at the end of the step.
            announcedTimer = nil
            if now >= membership.nextDeadline {
                for effect in membership.tick(now: now) { carryOut(effect) }
            }
            coordinationTimers(now: now)
            if now >= nextHandoff {
                nextHandoff = now.advanced(byNanoseconds: configuration.handoffInterval)
                handOff(now: now)
                collectTombstones(now: now)
            }
            if now >= nextAntiEntropy {
                nextAntiEntropy = now.advanced(byNanoseconds: configuration.antiEntropyInterval)
                startAntiEntropy()
            }
        }
        return finishStep(now: now)
    }

    /// The key's replicas: the first `replicationFactor` key owners going round the ring.
    public func replicas(of key: [UInt8]) -> [NodeID] {
        ring.preferenceList(for: key, count: configuration.replicationFactor)
    }

    /// The next instant at which the node has timed work to do.
    public var nextDeadline: Instant {
        var deadline = min(membership.nextDeadline, nextAntiEntropy, nextHandoff)
        for coordination in coordinations.values { deadline = min(deadline, coordination.nextDeadline) }
        return deadline
    }

    // MARK: Plumbing

    mutating func carryOut(_ effect: MembershipEffect) {
        switch effect {
        case .send(let to, let message):
            effects.append(.send(to: to, .membership(message)))
        case .statusChanged(let member, let status):
            effects.append(.memberStatusChanged(member, status))
            rebuildRing()
        }
    }

    mutating func rebuildRing() {
        var addresses: [NodeID: String] = [:]
        for update in membership.view { addresses[update.id] = update.address }
        self.addresses = addresses
        let owners = membership.keyOwners
        if owners != ring.members { ring = HashRing(members: owners) }
    }

    /// Sends `body` to `node`; a message to itself is handled within the same step.
    mutating func send(_ body: ReplicationBody, to node: NodeID) {
        guard let address = addresses[node] else { return }
        send(body, toAddress: address)
    }

    mutating func send(_ body: ReplicationBody, toAddress address: String) {
        let message = ReplicationMessage(sender: me, senderAddress: self.address, body: body)
        if address == self.address {
            selfInbox.append(message)
        } else {
            effects.append(.send(to: address, .replication(message)))
        }
    }

    mutating func finishStep(now: Instant) -> [Effect] {
        while !selfInbox.isEmpty {
            let message = selfInbox.removeFirst()
            received(message, now: now)
        }
        let deadline = nextDeadline
        if announcedTimer != deadline {
            announcedTimer = deadline
            effects.append(.setTimer(deadline))
        }
        defer { effects = [] }
        return effects
    }

    /// A wait of about `base · 2^attempt`, capped, with up to half of it drawn at random (jitter).
    mutating func backoff(attempt: Int) -> Int64 {
        let exponent = min(attempt, 16)
        let wait = min(configuration.retryMaximum, configuration.retryInitial << Int64(exponent))
        return wait / 2 + Int64(random.below(Int(max(wait / 2, 1))))
    }

    mutating func newRequestID() -> UInt64 {
        var id = random.next()
        while id == 0 || coordinations[id] != nil || handoffRequests[id] != nil || collectionRequests[id] != nil {
            id = random.next()
        }
        return id
    }
}
