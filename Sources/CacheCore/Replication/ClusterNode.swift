/// One cache node as a state machine: membership, the ring, the replica store, the write-ahead log
/// and request coordination, composed behind one interface. A node alone is a cluster of one.
///
/// Inputs are values (a client request, a peer message, a log write or sync that completed, the
/// allocator's figure, the timer firing), each with the current time; every effect leaves as a
/// value (send a message, append a log record, sync the log, write a snapshot, reply to a client,
/// set the timer). The simulator and the server are two drivers of this same type. Nothing here
/// reads a clock, touches a file or a socket, or draws randomness other than from the seeded
/// generator it was given.
public struct ClusterNode: Sendable {
    /// Settings of a node; the defaults suit a real cluster.
    public struct Configuration: Sendable {
        /// Replicas of every key (capped at the number of key owners).
        public var replicationFactor = 3
        /// Points per member on the ring (`/cluster` tells clients, whose rings must match).
        public var virtualNodes = HashRing.defaultVirtualNodes
        /// Level of writes that do not name one.
        public var writeConsistency = ConsistencyLevel.quorum
        /// Level of reads that do not name one.
        public var readConsistency = ConsistencyLevel.quorum
        /// Time to live of a put that gives none (`nil`: it never expires).
        public var defaultTimeToLive: Duration?
        /// How long a request may take before it answers that its level was not met.
        public var requestTimeout = Duration.seconds(1)
        /// First wait before asking a silent replica again; doubles per attempt, with jitter.
        public var retryInitial = Duration.milliseconds(50)
        /// Longest wait between two attempts to one replica.
        public var retryMaximum = Duration.milliseconds(400)
        /// Ask a node beyond the key's replicas when a replica stays silent (hinted handoff).
        public var sloppyQuorum = true
        /// Time between anti-entropy exchanges with one peer.
        public var antiEntropyInterval = Duration.seconds(1)
        /// Time between handoff passes over the keys this node holds but does not own.
        public var handoffInterval = Duration.milliseconds(500)
        /// How long a tombstone (or an expired entry) is kept at least; then it is collected once
        /// every replica confirmed it holds it. A node that was down for longer than this must
        /// rejoin with an empty data directory, or a value it still holds could come back.
        public var tombstoneGrace = Duration.seconds(600)
        /// Time between two rounds of the active expiry sweep (Redis's is ten times a second too).
        public var expirySweepInterval = Duration.milliseconds(100)
        /// Time between two attempts to make a failed log writable again.
        public var logRepairInterval = Duration.seconds(1)
        /// Most keys or entries in one anti-entropy or handoff message (throttling).
        public var maximumItemsPerMessage = 128
        /// Keys of the store walked per timer step while the digests are rebuilt after a ring change.
        public var indexingBudget = 16_384
        /// Most client requests coordinated at once; past it a request is answered `overloaded`.
        public var maximumCoordinations = 10_000
        /// Most answers held back until the log is durable; past it new writes are refused.
        public var maximumAwaitingDurability = 100_000
        /// Most log records appended and not yet durable; past it new writes are refused. Writes
        /// that answer nobody (repairs, pushes) append records too, hence the margin over
        /// `maximumAwaitingDurability`.
        public var maximumUnsyncedRecords = 400_000
        /// Entry and memory limits of the store.
        public var limits = StoreLimits()
        /// When the log is rewritten as a snapshot.
        public var compaction = CompactionPolicy()
        /// Membership and failure detection.
        public var membership = Membership.Configuration()
        /// Report every evicted key as an effect (the simulator's checkers need them; a server does not).
        public var reportsEvictedKeys = false
        /// How far ahead of this node's physical clock a version may be (`MAX_CLOCK_OFFSET_MS`): one
        /// further ahead is refused, never adopted, so a peer's broken clock or a forged frame cannot
        /// outrank later writes. Nodes' clocks must stay this close (NTP keeps them within milliseconds).
        public var maximumClockOffset = Self.defaultMaximumClockOffset
        /// CockroachDB's default bound.
        public static let defaultMaximumClockOffset = Duration.milliseconds(500)
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
            /// Versions are taken however far ahead of the clock they are, and a node whose clock runs
            /// ahead of its members' still coordinates writes.
            case adoptClocksPastTheBound = "adopt-clocks-past-the-bound"
            /// A write is acknowledged once one replica holds it, whatever its level asked.
            case acknowledgeBelowLevel = "acknowledge-below-level"
            /// Stand-ins that take a write count towards its level, as in a sloppy quorum.
            case countStandIns = "count-stand-ins"
            /// A repair extends the expiry of the value it carries by a minute.
            case extendTimeToLiveOnRepair = "extend-ttl-on-repair"
            /// No anti-entropy round ever starts: a replica that missed a write keeps missing it.
            case skipAntiEntropy = "skip-anti-entropy"
            /// Eviction takes tombstones too, as if a deletion were just one more entry.
            case evictTombstones = "evict-tombstones"
            /// An unmet level is answered as an invalid request (400), not as the documented 503
            /// naming the level and how many replicas answered.
            case misreportUnmetLevel = "misreport-unmet-level"
            /// An anti-entropy push of a key a full replica does not hold evicts to make room,
            /// instead of being taken only if it fits.
            case pushIntoFullStore = "push-into-full-store"
        }

        public init() {}
    }

    /// How long a put's value lives.
    public enum TimeToLive: Equatable, Sendable {
        /// The node's `defaultTimeToLive`.
        case nodeDefault
        /// It never expires.
        case never
        /// It expires this long after the coordinator takes the write.
        case after(Duration)
    }

    /// A client's request, as the driver decoded it.
    public enum ClientOperation: Equatable, Sendable {
        case get(key: [UInt8], consistency: ConsistencyLevel?)
        case put(key: [UInt8], value: [UInt8], ttl: TimeToLive, consistency: ConsistencyLevel?)
        case delete(key: [UInt8], consistency: ConsistencyLevel?)
    }

    /// How a client's request ended.
    public enum ClientOutcome: Equatable, Sendable {
        /// A live value; its bytes are shared, not copied.
        case found(StoredEntry)
        case notFound
        case stored(version: Version, expiresAt: Instant?)
        case deleted(existed: Bool, version: Version)
        /// The level could not be met in time: `answered` of the `required` replicas answered.
        case unavailable(level: ConsistencyLevel, answered: Int, required: Int)
        /// The request breaks a limit (a key or value too large, an entry larger than the memory limit).
        case invalid(RequestError)
        /// The write could not be persisted: this node's log refuses writes (its disk failed).
        case refused(reason: String)
        /// Too much is in flight on this node: the request was not started.
        case overloaded(reason: String)
        /// The node cannot coordinate yet (it has seeds and has met no member): it would otherwise
        /// answer as a cluster of one from whatever its own store holds.
        case notReady(reason: String)
    }

    /// The answer to a client, with how it was reached.
    public struct ClientReply: Equatable, Sendable {
        /// The driver's request number.
        public var request: UInt64
        public var outcome: ClientOutcome
        /// The key's replicas when the request started.
        public var replicas: [NodeID]
        /// Whether a node outside `replicas` also took the write, standing in for a replica that did
        /// not answer (a hint, handed to that replica later). Stand-ins never count towards the level.
        public var hinted: Bool

        public init(request: UInt64, outcome: ClientOutcome, replicas: [NodeID], hinted: Bool) {
            self.request = request
            self.outcome = outcome
            self.replicas = replicas
            self.hinted = hinted
        }
    }

    /// What happens to the node.
    public enum Input: Equatable, Sendable {
        /// A client's request; `request` is the driver's number, echoed in the reply. A write is
        /// not made once its client's `deadline` passed (the client gave up on it and may have
        /// written the key again through another node): a late copy must not overwrite that.
        case client(request: UInt64, ClientOperation, deadline: Instant? = nil)
        /// A message from a peer.
        case peer(PeerMessage)
        /// Every log record up to `upTo` was handed to the operating system.
        case logWritten(upTo: UInt64)
        /// Every log record up to `upTo` is on stable storage (the answer to `.sync`).
        case logSynced(upTo: UInt64)
        /// A write or sync of the log failed: writes are refused until it is repaired.
        case logFailed(reason: String)
        /// The log was cut back to end with record `keptSequence` and takes writes again (the answer
        /// to `.repairLog`).
        case logRepaired(keptSequence: UInt64)
        /// The snapshot asked for by `.writeSnapshot` is durable and the log it covers is gone.
        case snapshotWritten(upTo: UInt64)
        /// The snapshot could not be written; the log stays as it was.
        case snapshotFailed(reason: String)
        /// The allocator's count of bytes allocated by the whole process.
        case memoryReported(allocatedBytes: Int)
        /// A message could not be handed to the transport (the peer's connection is down or its queue
        /// is full): the node treats it as refused rather than waiting for the request to time out.
        case undeliverable(to: String, PeerMessage)
        /// The timer set by the last `.setTimer` fired (or any time: it is harmless).
        case timer
    }

    /// What the driver must do.
    public enum Effect: Equatable, Sendable {
        /// Send `message` to the peer at `address`.
        case send(to: String, PeerMessage)
        /// Append a record to the log; say `logWritten` once it is handed to the operating system.
        case append(sequence: UInt64, bytes: [UInt8])
        /// Make every record up to `upTo` durable (after writing it), then say `logSynced`.
        case sync(upTo: UInt64)
        /// Start a new log segment after the records appended so far, then write `snapshot` in the
        /// background and delete the log it covers; say `snapshotWritten` or `snapshotFailed`.
        case writeSnapshot(LogSnapshot)
        /// Cut the log back to its last whole record and make it writable; say `logRepaired`.
        case repairLog
        /// Answer a client.
        case reply(ClientReply)
        /// Deliver `.timer` at this instant (replaces any earlier setting).
        case setTimer(Instant)
        /// A member's status changed (for logs and metrics).
        case memberStatusChanged(NodeID, MemberStatus)
        /// A value was evicted (only with `reportsEvictedKeys`).
        case evicted(key: [UInt8])
        /// A tombstone was collected: every replica held it, and all were told to forget it (for
        /// logs, metrics and the simulator's checkers).
        case collected(key: [UInt8], version: Version)
        /// The node asked to leave has handed every key it held to the key's owners: it may stop.
        case leaveCompleted
        /// This node's clock now runs ahead of most members' by more than the maximum offset (it
        /// refuses writes until it does not), or no longer does.
        case clockAheadChanged(Bool)
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
    /// Peer addresses this node joins through; a node with none is alone until someone joins it.
    var seeds: [String] = []
    var addresses: [NodeID: String] = [:]
    var coordinations: CoordinationTable
    var handoffs: [KeyReference: Handoff] = [:]
    var handoffRequests: [UInt64: KeyReference] = [:]
    var collections: [KeyReference: TombstoneCollection] = [:]
    var collectionRequests: [UInt64: KeyReference] = [:]
    /// Answers held back until the log record they depend on is durable, in arrival order.
    var awaitingDurability: BoundedQueue<AwaitingDurability>
    /// Keys whose newest entry's log record is not durable yet (`always` only): by ring position,
    /// the record's sequence.
    var unsyncedWrites: [UInt64: UInt64] = [:]
    /// Every record of a key's entry not durable yet, in log order, under every policy (under
    /// `interval` and `none`, for one event-loop turn): what a repair of a failed log writes again.
    var unsyncedOrder: BoundedQueue<UnsyncedRecord>
    var nextAntiEntropy: Instant
    var nextHandoff: Instant
    var nextSweep: Instant
    var nextLogSync: Instant
    var nextLogRepair: Instant?
    /// A migration (a directory of the single-node release) waits for its snapshot.
    var migrationPending = false
    /// A node leaving has handed everything off (`leaveCompleted` was said).
    var leaveCompleted = false
    var announcedTimer: Instant?
    /// What the log's member records say of each member (the last one written, or recovered).
    var persistedMembers: [NodeID: MemberUpdate] = [:]
    /// The log was cut back: member records may be gone, and every member is written again.
    var membersToRewrite = false
    /// Entries a handoff or a collection let go of while the log could not record the drop: kept,
    /// and offered to those passes again once it can (`offerRefusedDropsAgain`). At most the store.
    var refusedDrops: Set<KeyReference> = []
    /// Whether the clock was ahead of the members' at the last membership message (`clockAheadChanged`).
    public internal(set) var isClockAhead = false
    /// Until this instant the clock may make versions this node made before it started (it keeps
    /// no record of those it made for keys other nodes hold): writes wait (`writesAwaitingClock`).
    /// The clock never takes a reading more than the maximum offset ahead of its physical one, so
    /// past `start + maximumClockOffset` every version it makes is greater than any made before.
    let versionsSafeAfter: Instant
    /// Client writes that came while versions were not safe yet, in arrival order.
    var writesAwaitingClock: BoundedQueue<(client: UInt64, operation: ClientOperation, deadline: Instant?)>
    var counters = StoreStatistics()
    /// Effects of the step in progress.
    var effects: [Effect] = []
    /// Messages this node sent to itself, handled before the step ends.
    var selfInbox = BoundedQueue<ReplicationMessage>(capacity: ClusterNode.maximumSelfMessages)
    /// `[me]`, made once: the replicas of every key of a node alone.
    let selfOnly: [NodeID]

    /// The most messages a step may send to itself (a bound on the self-inbox).
    static let maximumSelfMessages = 100_000

    /// A node at `now` holding what `recovered` holds (a store rebuilt from its log by `Recovery`,
    /// or an empty one), with a log under `logPolicy` (`nil`: nothing is persisted) that continues
    /// after `report.lastSequence`.
    public init(
        me: NodeID, address: String, clientAddress: String = "", configuration: Configuration = Configuration(),
        seed: UInt64, recovered: Recovery.Outcome? = nil, logPolicy: SyncPolicy?, now: Instant
    ) {
        self.me = me
        self.address = address
        self.configuration = configuration
        self.selfOnly = [me]
        self.coordinations = CoordinationTable(capacity: configuration.maximumCoordinations)
        self.awaitingDurability = BoundedQueue(capacity: configuration.maximumAwaitingDurability)
        self.versionsSafeAfter = now.advanced(by: configuration.maximumClockOffset)
        self.writesAwaitingClock = BoundedQueue(capacity: configuration.maximumCoordinations)
        self.unsyncedOrder = BoundedQueue(capacity: configuration.maximumUnsyncedRecords)
        var root = SplitMix64(seed: seed)
        self.random = root.derived(stream: 1)
        self.membership = Membership(
            me: me, address: address, clientAddress: clientAddress, configuration: configuration.membership,
            seed: root.next(), now: now)
        self.clock = HybridClock(node: me)
        var storeSeed = root.derived(stream: 2)
        var store =
            recovered?.store
            ?? ReplicaStore(
                limits: configuration.limits, seed: storeSeed.next(),
                recordsEvictedKeys: configuration.reportsEvictedKeys)
        store.setRecordsEvictedKeys(configuration.reportsEvictedKeys)
        store.evictsTombstones = configuration.injectedBug == .evictTombstones
        if let newest = recovered?.report.newestVersion {
            clock.observe(newest, now: now, maximumOffset: configuration.maximumClockOffset)
        }
        let ring = HashRing(members: [me], virtualNodes: configuration.virtualNodes)
        store.placementChanged(
            ReplicaStore.Placement(me: me, ring: ring, replicationFactor: configuration.replicationFactor))
        self.store = store
        self.ring = ring
        self.log = logPolicy.map {
            WriteAheadLog(
                policy: $0, compaction: configuration.compaction,
                recoveredSequence: recovered?.report.lastSequence ?? 0, logBytes: recovered?.report.logBytes ?? 0)
        }
        self.migrationPending = (recovered?.report.legacyRecords ?? 0) > 0 && logPolicy != nil
        self.addresses = [me: address]
        self.nextAntiEntropy = now.advanced(by: configuration.antiEntropyInterval)
        self.nextHandoff = now.advanced(by: configuration.handoffInterval)
        self.nextSweep = now.advanced(by: configuration.expirySweepInterval)
        self.nextLogSync = now.advanced(by: Self.syncPeriod(logPolicy))
        // The members it knew: the ring is the one it had before the restart (docs/cluster-operations.md).
        if logPolicy != nil, let known = recovered?.members, !known.isEmpty {
            membership.restore(known, now: now)
            for update in membership.persistentClaims { persistedMembers[update.id] = update }
            rebuildRing()
        }
    }

    /// Starts the node: joins the cluster through `seeds` (peer addresses; none for a node alone),
    /// and rewrites a migrated log directory as a snapshot.
    public mutating func start(seeds: [String], now: Instant) -> [Effect] {
        self.seeds = seeds.filter { $0 != address }
        for effect in membership.join(seeds: seeds, now: now) { carryOut(effect) }
        updateTombstoneKeeping()
        if migrationPending, let upTo = log?.startCompactionIfDue(liveBytes: 0, force: true) {
            effects.append(.writeSnapshot(snapshot(upTo: upTo, now: now)))
        }
        return finishStep(now: now)
    }

    /// Handles one input at `now` and returns what the driver must do.
    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        switch input {
        case .client(let request, let operation, let deadline):
            take(client: request, operation, deadline: deadline, now: now)
        case .peer(.membership(let message)):
            for effect in membership.received(message, now: now) { carryOut(effect) }
            let ahead = membership.isClockAhead(by: configuration.maximumClockOffset)
            if ahead != isClockAhead {
                isClockAhead = ahead
                effects.append(.clockAheadChanged(ahead))
            }
        case .peer(.replication(let message)):
            // A peer's message naming this node as its sender is forged or misrouted: answering it
            // would have the node talk to itself (the self-inbox is for its own messages only).
            if message.sender == me || message.senderAddress == address {
                counters.peerMessagesIgnored &+= 1
            } else {
                received(message, now: now)
            }
        case .logWritten(let sequence):
            log?.writeCompleted(upTo: sequence)
            releaseDurable(now: now)
        case .logSynced(let sequence):
            log?.syncCompleted(upTo: sequence)
            releaseDurable(now: now)
        case .logFailed(let reason):
            logFailed(reason: reason, now: now)
        case .logRepaired(let kept):
            logRepaired(keptSequence: kept, now: now)
        case .snapshotWritten:
            if case .compacting = log?.phase { log?.compactionFinished() }
            migrationPending = false
        case .snapshotFailed:
            if case .compacting = log?.phase { log?.compactionFailed() }
        case .memoryReported(let allocated):
            store.allocatorReported(allocatedBytes: allocated)
        case .undeliverable(let address, let message):
            undeliverable(message, to: address, now: now)
        case .timer:
            timerFired(now: now)
        }
        return finishStep(now: now)
    }

    /// Why the node cannot leave.
    public enum LeaveRefusal: Error, Equatable, Sendable {
        /// No other member is alive: nobody would receive this node's keys.
        case noOtherMember
    }

    /// Leaves the cluster on purpose: tells the others (they stop routing to this node), hands every
    /// key it holds to the key's owners, and says `leaveCompleted` once all of them confirmed they
    /// hold what it sent. No acknowledged write is lost: each stays on its other replicas meanwhile,
    /// and this node's copies reach the new owners before it goes.
    public mutating func leave(now: Instant) -> Result<[Effect], LeaveRefusal> {
        guard !membership.isLeaving else { return .success(finishStep(now: now)) }
        guard membership.view.contains(where: { $0.id != me && $0.status == .alive && membership.isVouched($0.id) })
        else {
            return .failure(.noOtherMember)
        }
        for effect in membership.leave(now: now) { carryOut(effect) }
        rebuildRing()
        nextHandoff = now
        return .success(finishStep(now: now))
    }

    /// Forgets a member that is dead for good (`Membership.forget`).
    public mutating func forget(_ member: NodeID, now: Instant) -> Result<[Effect], Membership.ForgetRefusal> {
        switch membership.forget(member, now: now) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let membershipEffects):
            for effect in membershipEffects { carryOut(effect) }
            return .success(finishStep(now: now))
        }
    }

    /// Copies of each key actually kept: the replication factor, or fewer while the ring has fewer
    /// key owners (what `replicas(of:)` returns, counted once).
    public var effectiveReplicationFactor: Int {
        min(configuration.replicationFactor, ring.members.count)
    }

    /// The key's replicas: the first `replicationFactor` key owners going round the ring.
    public func replicas(of key: [UInt8]) -> [NodeID] {
        replicas(of: KeyReference(key))
    }

    func replicas(of key: KeyReference) -> [NodeID] {
        if ring.members.count == 1 { return ring.members }
        return ring.preferenceList(forPosition: key.position, count: configuration.replicationFactor)
    }

    /// The node's counters: the store's and the client requests it coordinated.
    public var statistics: StoreStatistics {
        var statistics = counters
        statistics.store = store.statistics
        return statistics
    }

    /// Whether the node is leaving the cluster (`leave`), and whether it is done.
    public var leaveState: LeaveState {
        guard membership.isLeaving else { return .member }
        return leaveCompleted ? .left : .leaving(keysToHandOff: store.count)
    }

    /// Where a node stands about leaving.
    public enum LeaveState: Equatable, Sendable {
        case member
        case leaving(keysToHandOff: Int)
        case left
    }

    /// The ring's identity: the same on every node that sees the same key owners (a hash of their
    /// names), and different after any change. It names a ring; it does not order rings.
    public var ringVersion: UInt64 { ring.version }

    /// Whether the node is alone: started without seeds and never joined by anyone. It keeps no
    /// tombstones then, since no replica could bring back what it deleted.
    public var isAlone: Bool { seeds.isEmpty && membership.memberCount == 1 }

    /// Whether the node was given seeds and has reached no member yet (``Membership/hasReachedMember``).
    /// It does not coordinate requests then: its ring holds only itself, and it would answer from its
    /// own store alone (a restarted node from a stale one).
    public var isJoining: Bool { !seeds.isEmpty && !membership.hasReachedMember }

    /// Whether load balancers may send this node traffic (`/ready`), and if not, why.
    public enum Readiness: String, Sendable, Equatable {
        /// Joined (or alone by design) and not leaving.
        case ready
        /// Given seeds, it has not yet met another member alive and vouched for.
        case joining
        /// It is handing its keys off.
        case leaving
    }

    /// Readiness, decided here for every driver: not while leaving, nor while joining
    /// (``isJoining``), nor, with seeds other than itself, before another member is seen alive and
    /// vouched for.
    public var readiness: Readiness {
        if membership.isLeaving { return .leaving }
        if isJoining { return .joining }
        // `seeds` never holds this node's own address (`start(seeds:now:)` leaves it out).
        if !seeds.isEmpty {
            let someoneElse = membership.view.contains {
                $0.id != me && $0.status == .alive && membership.isVouched($0.id)
            }
            if !someoneElse { return .joining }
        }
        return .ready
    }

    /// Whether a directory written by an earlier release is being rewritten as a snapshot: until it is
    /// durable the node must not serve (a crash would replay the old records with new versions).
    public var isMigrating: Bool { migrationPending }

    /// Coordinations in flight (for `/stats` and tests).
    public var requestsInFlight: Int { coordinations.count }

    /// The next instant at which the node has timed work to do.
    public var nextDeadline: Instant {
        var deadline = min(membership.nextDeadline, nextAntiEntropy, nextHandoff, nextSweep)
        if log?.policy.isInterval == true { deadline = min(deadline, nextLogSync) }
        if let nextLogRepair { deadline = min(deadline, nextLogRepair) }
        if let next = coordinations.nextDeadline { deadline = min(deadline, next) }
        if !writesAwaitingClock.isEmpty { deadline = min(deadline, versionsSafeAfter.advanced(by: .nanoseconds(1))) }
        return deadline
    }

    // MARK: Timer

    mutating func timerFired(now: Instant) {
        // The timer is spent: whatever the next deadline, it is set again at the end of the step.
        announcedTimer = nil
        if now >= membership.nextDeadline {
            for effect in membership.tick(now: now) { carryOut(effect) }
        }
        coordinationTimers(now: now)
        if now > versionsSafeAfter {
            while let waiting = writesAwaitingClock.popFirst() {
                take(client: waiting.client, waiting.operation, deadline: waiting.deadline, now: now)
            }
        }
        if !store.isIndexed { store.continueIndexing(budget: configuration.indexingBudget) }
        if now >= nextSweep {
            nextSweep = now.advanced(by: configuration.expirySweepInterval)
            store.sweepExpired(now: now)
            let liveBytes = store.statistics.estimatedBytes
            // A migration whose snapshot failed is tried again: the node does not serve without it.
            if let covered = log?.startCompactionIfDue(liveBytes: liveBytes, force: migrationPending) {
                effects.append(.writeSnapshot(snapshot(upTo: covered, now: now)))
            }
        }
        if now >= nextHandoff {
            offerRefusedDropsAgain()
            handOff(now: now)
            collectTombstones(now: now)
            // While keys wait to be handed off, passes come ten times as often: a new node or a
            // leaving one moves its keys in seconds, not minutes.
            let backlog = handoffBacklog > 0 || !store.isIndexed
            nextHandoff = now.advanced(by: backlog ? configuration.handoffInterval / 10 : configuration.handoffInterval)
        }
        if membership.isLeaving, !leaveCompleted, store.isIndexed, store.count == 0 {
            leaveCompleted = true
            effects.append(.leaveCompleted)
        }
        if now >= nextAntiEntropy {
            nextAntiEntropy = now.advanced(by: configuration.antiEntropyInterval)
            startAntiEntropy()
        }
        if log?.policy.isInterval == true, now >= nextLogSync {
            nextLogSync = now.advanced(by: Self.syncPeriod(log?.policy))
            if let upTo = log?.nextSync(periodDue: true) { effects.append(.sync(upTo: upTo)) }
        }
        if let repairAt = nextLogRepair, now >= repairAt {
            nextLogRepair = now.advanced(by: configuration.logRepairInterval)
            effects.append(.repairLog)
        }
    }

    static func syncPeriod(_ policy: SyncPolicy?) -> Duration {
        if case .interval(let period) = policy { return period }
        return .seconds(3600)
    }

    // MARK: Plumbing

    mutating func carryOut(_ effect: MembershipEffect) {
        switch effect {
        case .send(let to, let message):
            effects.append(.send(to: to, .membership(message)))
        case .statusChanged(let member, let status):
            effects.append(.memberStatusChanged(member, status))
            rebuildRing()
        case .reached:
            rebuildRing()
        }
    }

    mutating func rebuildRing() {
        var addresses: [NodeID: String] = [:]
        for update in membership.view { addresses[update.id] = update.address }
        self.addresses = addresses
        let owners = membership.keyOwners
        if owners != ring.members {
            ring = ring.with(members: owners)
            store.placementChanged(
                ReplicaStore.Placement(me: me, ring: ring, replicationFactor: configuration.replicationFactor))
        }
        updateTombstoneKeeping()
    }

    mutating func updateTombstoneKeeping() {
        store.setKeepsTombstones(!isAlone)
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
        while let message = selfInbox.popFirst() {
            received(message, now: now)
        }
        persistMembership()
        if let upTo = log?.nextSync(periodDue: false) { effects.append(.sync(upTo: upTo)) }
        for key in store.drainEvictedKeys() { effects.append(.evicted(key: key)) }
        let deadline = store.isIndexed ? nextDeadline : min(nextDeadline, now.advanced(by: .milliseconds(1)))
        if announcedTimer != deadline {
            announcedTimer = deadline
            effects.append(.setTimer(deadline))
        }
        defer { effects = [] }
        return effects
    }

    /// A wait of about `base · 2^attempt`, capped, with up to half of it drawn at random (jitter).
    mutating func backoff(attempt: Int) -> Duration {
        let exponent = min(attempt, 16)
        let initial = configuration.retryInitial.nanoseconds
        let wait = min(configuration.retryMaximum.nanoseconds, initial << Int64(exponent))
        return .nanoseconds(wait / 2 + Int64(random.below(Int(max(wait / 2, 1)))))
    }

    mutating func newRequestID() -> UInt64 {
        var id = random.next()
        while id == 0 || coordinations.contains(id) || handoffRequests[id] != nil || collectionRequests[id] != nil {
            id = random.next()
        }
        return id
    }

    /// The snapshot of the store and of the members as of log record `upTo`.
    func snapshot(upTo: UInt64, now: Instant) -> LogSnapshot {
        assert(log?.lastSequence == upTo, "a snapshot of members as of another record")
        return LogSnapshot(
            upTo: upTo, store: store, members: persistedMembers.values.sorted { $0.id < $1.id }, now: now)
    }

    /// Logs what changed in what the node must remember of the members (`Membership.persistentClaim`):
    /// a member record each, unsynced like a drop (nothing waits on it; under `always` the step's
    /// sync covers it). A record the failing log refuses is written once the log is repaired.
    mutating func persistMembership() {
        guard log != nil, membersToRewrite || membership.hasPersistentChanges else { return }
        var changed = membership.takePersistentChanges()
        if membersToRewrite, log?.failure == nil {
            membersToRewrite = false
            persistedMembers = [:]
            changed = membership.persistentClaims.map(\.id)
        }
        for id in changed {
            guard let claim = membership.persistentClaim(of: id), persistedMembers[id] != claim else { continue }
            switch log?.append(.member(claim)) {
            case .append(let sequence, let bytes):
                effects.append(.append(sequence: sequence, bytes: bytes))
                persistedMembers[id] = claim
            case .refused, nil:
                membersToRewrite = true
            }
        }
    }
}

extension SyncPolicy {
    var isInterval: Bool {
        if case .interval = self { return true }
        return false
    }
}
