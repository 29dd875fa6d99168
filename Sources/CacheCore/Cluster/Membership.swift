/// What one node believes about one member.
public enum MemberStatus: UInt8, Equatable, Sendable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    /// Left on purpose (graceful leave).
    case left = 3

    /// Whether the member is taking part: alive or suspect (probed, gossiped with).
    public var isLive: Bool { self == .alive || self == .suspect }

    /// Whether the member owns keys: every member that did not leave. A dead member keeps its share
    /// of the ring until it comes back or is forgotten (`forget`): a failure moves no data, and a
    /// minority cut off from the others cannot make quorums of itself.
    public var ownsKeys: Bool { self != .left }

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// A claim about a member, as gossip carries it.
public struct MemberUpdate: Equatable, Sendable {
    public var id: NodeID
    /// Where the member listens for peers (`host:port`).
    public var address: String
    /// Where the member serves clients (its HTTP API, `host:port`; empty when not known).
    public var clientAddress: String
    /// Raised only by the member itself, to refute a suspicion or to come back after being declared dead.
    public var incarnation: UInt64
    public var status: MemberStatus
    /// In a full state answering this node's own `join` or `sync`: whether the member that answered
    /// holds this member as reached (it had a direct answer from it, or was told so the same way).
    /// Anywhere else it is ignored, since anyone can write it.
    public var vouched: Bool

    public init(
        id: NodeID, address: String, clientAddress: String = "", incarnation: UInt64, status: MemberStatus,
        vouched: Bool = false
    ) {
        self.id = id
        self.address = address
        self.clientAddress = clientAddress
        self.incarnation = incarnation
        self.status = status
        self.vouched = vouched
    }

    /// Whether this claim replaces `current` (SWIM's precedence, with dead and left final for their
    /// incarnation): a higher incarnation always wins; at the same incarnation, suspect beats alive
    /// and dead or left beat both.
    public func overrides(_ current: MemberUpdate) -> Bool {
        if incarnation != current.incarnation { return incarnation > current.incarnation }
        return status.rank > current.status.rank
    }
}

extension MemberStatus {
    var rank: Int {
        switch self {
        case .alive: 0
        case .suspect: 1
        case .dead: 2
        // A member that left says so itself: above a death claimed at the same incarnation (it may
        // have been held dead while it handed its keys off, cut off from some).
        case .left: 3
        }
    }
}

/// The messages members exchange. Every message also carries its sender and piggybacked updates.
public enum MembershipMessageBody: Equatable, Sendable {
    /// Are you there? Answered with `ack` of the same sequence.
    case ping(sequence: UInt64)
    /// Please ping `target` for me and relay its `ack`.
    case pingRequest(sequence: UInt64, target: NodeID, targetAddress: String)
    /// `target` answered the probe `sequence` (sent by the target itself, or relayed).
    case ack(sequence: UInt64, target: NodeID)
    /// A new node asks for the whole membership; the answer echoes `nonce`.
    case join(nonce: UInt64)
    /// The whole membership, in answer to `join` or `sync` (echoing its `nonce`), and as the push
    /// half of push-pull.
    case state(nonce: UInt64, [MemberUpdate])
    /// Push-pull anti-entropy: here is my whole membership, send me yours (echoing `nonce`).
    case sync(nonce: UInt64, [MemberUpdate])
}

/// One message between members.
public struct MembershipMessage: Equatable, Sendable {
    public var sender: NodeID
    public var senderAddress: String
    /// Where the sender serves clients.
    public var senderClientAddress: String
    public var senderIncarnation: UInt64
    /// The sender's physical clock when it made the message: receivers learn whether their own
    /// clock runs ahead of their peers' (`Membership.clockAheadOfPeers`).
    public var senderTime: Instant
    public var updates: [MemberUpdate]
    public var body: MembershipMessageBody

    public init(
        sender: NodeID, senderAddress: String, senderClientAddress: String = "", senderIncarnation: UInt64,
        senderTime: Instant = .epoch, updates: [MemberUpdate], body: MembershipMessageBody
    ) {
        self.sender = sender
        self.senderAddress = senderAddress
        self.senderClientAddress = senderClientAddress
        self.senderIncarnation = senderIncarnation
        self.senderTime = senderTime
        self.updates = updates
        self.body = body
    }
}

/// What the driver must do after an event.
public enum MembershipEffect: Equatable, Sendable {
    /// Send `message` to the peer at `address`.
    case send(to: String, MembershipMessage)
    /// This node's view of `member` changed to `status` (the ring may need rebuilding).
    case statusChanged(NodeID, MemberStatus)
    /// This node now holds `member` as reached: it takes its share of the ring.
    case reached(NodeID)
}

/// SWIM-style membership and failure detection for one node, as a state machine.
///
/// Each protocol period the node probes one member (a round-robin over a shuffled list): a `ping`,
/// then, without an `ack` within the probe timeout, `pingRequest`s to a few others who probe on its
/// behalf; without any `ack` by the period's end the member becomes *suspect*, and after the
/// suspicion timeout *dead*. A member refutes a suspicion of itself by raising its incarnation; a
/// member declared dead comes back the same way. Every claim is piggybacked on the messages the
/// protocol sends anyway, each retransmitted about λ·log(n) times (infection-style dissemination).
/// Joining asks a seed for the whole membership, and every few periods a push-pull exchange with a
/// random member repairs what gossip missed; the same round also syncs with one member held dead,
/// so that a member wrongly declared dead (cut off, not crashed) learns it and comes back, and a
/// node that finds itself alone joins through its seeds again.
///
/// Time comes in with every event; randomness comes from a seeded generator; effects go out as
/// values. The driver delivers messages, and calls ``tick(now:)`` at ``nextDeadline`` (or more often).
public struct Membership: Sendable {
    /// Protocol timings and sizes.
    public struct Configuration: Sendable, Equatable {
        /// One protocol period (`GOSSIP_INTERVAL`).
        public var protocolPeriod: Duration
        /// How long to wait for a direct `ack` before asking others (`HEARTBEAT_INTERVAL`).
        public var probeTimeout: Duration
        /// How long a member stays suspect before it is declared dead (`FAILURE_TIMEOUT`).
        public var suspicionTimeout: Duration
        /// Members asked to probe indirectly.
        public var indirectProbes: Int
        /// Most updates piggybacked on one message.
        public var maximumPiggybackedUpdates: Int
        /// λ in SWIM's λ·log(n) retransmissions of each update.
        public var retransmitMultiplier: Int
        /// A push-pull exchange every this many periods.
        public var syncEveryPeriods: Int
        /// A deliberately wrong behaviour, for proving that the simulator's checkers can fail.
        /// Never set outside tests.
        public var injectedBug: InjectedBug?

        /// Deliberately wrong behaviours the simulator must catch.
        public enum InjectedBug: String, Sendable, Equatable, CaseIterable {
            /// Judge claims by status alone, as if incarnation numbers did not exist.
            case ignoreIncarnations = "ignore-incarnations"
        }

        /// The defaults match the node's defaults (1 s, 500 ms, 5 s).
        public init(
            protocolPeriod: Duration = .seconds(1), probeTimeout: Duration = .milliseconds(500),
            suspicionTimeout: Duration = .seconds(5), indirectProbes: Int = 3, maximumPiggybackedUpdates: Int = 8,
            retransmitMultiplier: Int = 3, syncEveryPeriods: Int = 10
        ) {
            self.protocolPeriod = protocolPeriod
            self.probeTimeout = probeTimeout
            self.suspicionTimeout = suspicionTimeout
            self.indirectProbes = indirectProbes
            self.maximumPiggybackedUpdates = maximumPiggybackedUpdates
            self.retransmitMultiplier = retransmitMultiplier
            self.syncEveryPeriods = syncEveryPeriods
            self.injectedBug = nil
        }
    }

    private struct Member {
        var update: MemberUpdate
    }

    private enum Probe {
        case idle
        /// Waiting for the target's `ack`; asks others at `indirectAt`; gives up at `periodEnd`.
        case waiting(target: NodeID, sequence: UInt64, indirectAt: Instant, periodEnd: Instant, askedOthers: Bool)
    }

    /// A probe this node runs on behalf of another.
    private struct Relay {
        var requesterAddress: String
        var requesterSequence: UInt64
        var target: NodeID
        var expires: Instant
    }

    public let configuration: Configuration
    public let me: NodeID
    public let myAddress: String
    /// Where this node serves clients.
    public let myClientAddress: String
    public private(set) var incarnation: UInt64 = 0

    private var members: [NodeID: Member] = [:]
    /// Every member's name, sorted: iteration order never depends on the dictionary's.
    private var memberOrder: [NodeID] = []
    /// When each member was last heard from directly (any message it sent).
    private var lastContact: [NodeID: Instant] = [:]
    /// Members currently suspect, and since when (for the suspicion timeout).
    private var suspects: [NodeID: Instant] = [:]
    private var random: SplitMix64
    private var probe = Probe.idle
    private var probeOrder: [NodeID] = []
    private var nextPeriod: Instant
    /// Lifeguard's local health multiplier: how much this node doubts itself. A node that misses
    /// acks or has to refute suspicions may be the slow one (overloaded, paused); it then probes
    /// less often and waits longer for acks, instead of accusing healthy members.
    public private(set) var localHealth = 0
    /// The most members a node keeps track of (a cluster of a few thousand nodes fits).
    public static let maximumMembers = 4096
    /// The highest `localHealth`: probe periods and timeouts stretch to at most 9×.
    public static let maximumLocalHealth = 8
    /// The highest incarnation a claim may carry (frames with more are refused). A member raises its
    /// own by one per refutation, so an honest one never gets near it (2^48 refutations); at the top,
    /// refutations saturate instead of wrapping.
    public static let maximumIncarnation: UInt64 = 1 << 48
    /// How far above what this node knows of a member (0 for a member it does not know, its own for
    /// itself) one claim may raise the member's incarnation; a claim that jumps further is ignored.
    /// A forger would need 2^28 claims, each answered by a refutation, to reach the top.
    public static let maximumIncarnationStep: UInt64 = 1 << 20
    /// The most probes this node runs for others at once (`pingRequest`s past it are ignored).
    public static let maximumRelays = 256
    /// The most `join` and `sync` exchanges awaiting their answer.
    public static let maximumExchanges = 64
    private var periods = 0
    private var relays = BoundedTable<UInt64, Relay>(capacity: Membership.maximumRelays)
    /// Members this node holds as reached: it had a direct answer from them (an `ack` to one of its own
    /// probes, whose sequences are drawn at random, or a full state echoing its own nonce), or a member
    /// it reached that way vouched for them in such a state. Only these take a share of the ring: a
    /// member that exists only in somebody's claim owns no keys.
    private var vouched: Set<NodeID> = []
    /// Pings sent to members not reached yet, by sequence: their `ack` vouches for them.
    private var confirmations: [UInt64: (member: NodeID, expires: Instant)] = [:]
    /// Nonces of this node's `join` and `sync` messages still awaiting their `state`.
    private var exchanges: [(nonce: UInt64, expires: Instant)] = []
    /// How far this node's clock runs ahead of each reached member's, as its messages tell.
    private var clockLeads: [NodeID: ClockLeadSamples] = [:]
    /// The time of the event being handled (messages carry it as `senderTime`).
    private var eventTime: Instant
    /// Claims ignored because they raised a member's incarnation by more than `maximumIncarnationStep`.
    public private(set) var claimsIgnored: UInt64 = 0
    /// Members nobody reached that this node forgot, with the incarnation they were forgotten at and
    /// until when a claim of them alive at no higher incarnation is not believed again
    /// (`forgettingWindow`): the claim that made them up is still being gossiped, and would bring them
    /// back over and over.
    private var forgotten: [NodeID: (incarnation: UInt64, until: Instant)] = [:]
    /// The most forgotten members remembered (the oldest goes first).
    public static let maximumForgotten = 1024
    /// Claims still to be piggybacked, with how many times each went out (ordered for determinism).
    private var gossip: [(update: MemberUpdate, transmissions: Int)] = []
    private var leaving = false
    /// Where this node joined through; asked again whenever it finds itself alone.
    private var seeds: [String] = []
    /// Members whose persistent claim (``persistentClaim(of:)``) may have changed since the node
    /// last took them (``takePersistentChanges()``): bounded by the membership.
    private var persistentChanges: Set<NodeID> = []
    /// Whether a member reached before (vouched) has been heard from, or a new one reached, since
    /// this node started: members restored from its log count as reached for the ring, not for this.
    private var heardSinceStart = false

    /// A node that knows only itself, starting at `now`.
    public init(
        me: NodeID, address: String, clientAddress: String = "", configuration: Configuration = Configuration(),
        seed: UInt64, now: Instant
    ) {
        self.me = me
        self.myAddress = address
        self.myClientAddress = clientAddress
        self.configuration = configuration
        self.random = SplitMix64(seed: seed)
        self.nextPeriod = now
        self.eventTime = now
    }

    // MARK: Queries

    /// What this node believes about every member it knows, itself included, sorted by name.
    public var view: [MemberUpdate] {
        // `memberOrder` is kept sorted as members arrive: this node is merged in, nothing is sorted.
        assert(memberOrder.count == members.count, "Membership: the name order and the members differ")
        var view: [MemberUpdate] = []
        view.reserveCapacity(memberOrder.count + 1)
        var placed = false
        for id in memberOrder {
            if !placed, me < id {
                view.append(selfUpdate)
                placed = true
            }
            view.append(member(id))
        }
        if !placed { view.append(selfUpdate) }
        return view
    }

    /// How many members this node knows, itself included.
    public var memberCount: Int { members.count + 1 }

    /// The members that own keys, itself included, sorted by name: every reached member (see
    /// ``isVouched(_:)``) that did not leave.
    public var keyOwners: [NodeID] {
        view.filter { $0.status.ownsKeys && ($0.id == me || vouched.contains($0.id)) }.map(\.id)
    }

    /// Whether this node holds `member` as reached (directly, or vouched for by a member it reached).
    public func isVouched(_ member: NodeID) -> Bool { member == me || vouched.contains(member) }

    /// Whether this node has reached any other member since it started: until then a node with
    /// seeds has not joined (members it knew before a restart do not count until one answers).
    public var hasReachedMember: Bool { heardSinceStart }

    /// Whether this node's clock runs ahead of most reached live members' by more than `bound`
    /// (its versions would be refused by them), by the smallest lead each member's messages showed
    /// in the current `clockLeadWindow` and the one before it that had readings: a message's delay
    /// in transit counts as lead, so one late message must not make a node refuse writes (seen
    /// under overload, delays over 500 ms), nor the messages queued while it was paused. A clock
    /// that jumps ahead is noticed once the window has passed.
    public func isClockAhead(by bound: Duration) -> Bool {
        let limit = bound.nanoseconds
        var measured = 0
        var ahead = 0
        for id in memberOrder where vouched.contains(id) && member(id).status.isLive {
            guard let lead = clockLeads[id]?.smallest else { continue }
            measured += 1
            if lead > limit { ahead += 1 }
        }
        return measured > 0 && ahead * 2 > measured
    }

    /// Whether every other member seen alive measured, by its last message, this node's clock
    /// ahead of its own by no more than `bound` (one never measured does not agree): stricter than
    /// ``isClockAhead(by:)``, which asks most of them and forgives a late message. Here delay counts
    /// against agreement: it only defers what waits for agreement (collecting tombstones).
    public func clockAgreesWithEveryAliveMember(within bound: Duration) -> Bool {
        let limit = bound.nanoseconds
        for id in memberOrder where member(id).status == .alive {
            guard let lead = clockLeads[id]?.latest, lead <= limit else { return false }
        }
        return true
    }

    /// How far this node's clock ran ahead of `member`'s (negative: behind) when its last message
    /// came, delay in transit included, if a reached member's message was measured.
    public func clockLead(over member: NodeID) -> Int64? { clockLeads[member]?.latest }

    /// The span over which the smallest clock lead is kept: five protocol periods (a member's
    /// messages come about once a period).
    private var clockLeadWindow: Duration { configuration.protocolPeriod * 5 }

    /// When `member` was last heard from directly, if ever.
    public func lastContact(with member: NodeID) -> Instant? { lastContact[member] }

    /// Whether this node is leaving (or has left) the cluster.
    public var isLeaving: Bool { leaving }

    /// The status of `member` as this node sees it.
    public func status(of member: NodeID) -> MemberStatus? {
        member == me ? (leaving ? .left : .alive) : members[member]?.update.status
    }

    /// The next instant at which ``tick(now:)`` has work to do.
    public var nextDeadline: Instant {
        // Leaving, the node only announces its departure once a period (`leavingTick`); suspicions
        // it hears of are not its to time out.
        if leaving { return nextPeriod }
        var deadline = nextPeriod
        if case .waiting(_, _, let indirectAt, let periodEnd, let askedOthers) = probe {
            deadline = min(deadline, askedOthers ? periodEnd : indirectAt)
        }
        for suspectedAt in suspects.values {
            deadline = min(deadline, suspectedAt.advanced(by: configuration.suspicionTimeout))
        }
        return deadline
    }

    private var selfUpdate: MemberUpdate {
        MemberUpdate(
            id: me, address: myAddress, clientAddress: myClientAddress, incarnation: incarnation,
            status: leaving ? .left : .alive)
    }

    /// What this node must remember of `member` across a restart, if anything: a member it reached,
    /// at its incarnation and address, as alive (a suspicion is not worth keeping), dead or departed.
    /// Members nobody reached own no keys and are not kept.
    public func persistentClaim(of member: NodeID) -> MemberUpdate? {
        guard member != me, vouched.contains(member), var update = members[member]?.update else { return nil }
        update.vouched = false
        if update.status == .suspect { update.status = .alive }
        return update
    }

    /// Whether ``takePersistentChanges()`` has anything to give (checked on every step: cheap).
    public var hasPersistentChanges: Bool { !persistentChanges.isEmpty }

    /// Members whose ``persistentClaim(of:)`` may have changed since the last call, in name order.
    public mutating func takePersistentChanges() -> [NodeID] {
        defer { persistentChanges = [] }
        return persistentChanges.sorted()
    }

    /// Every member with a persistent claim, in name order (what a snapshot keeps).
    public var persistentClaims: [MemberUpdate] { memberOrder.compactMap { persistentClaim(of: $0) } }

    // MARK: Events

    /// Takes back what this node knew of the members before a restart (its log's member records),
    /// before it joins: each as reached, so that the ring is the one it had (a member dead or away
    /// keeps its share; one that left or was forgotten stays out). Those alive are probed like any;
    /// one that is down is suspected and declared dead in the usual time, and one that is back comes
    /// alive by its own messages. Claims about this node, this node's address, or with fields a peer
    /// could not send are skipped.
    public mutating func restore(_ known: [MemberUpdate], now: Instant) {
        eventTime = now
        assert(members.isEmpty, "Membership: restored after members were known")
        for var update in known {
            guard update.id != me, update.address != myAddress, members[update.id] == nil,
                members.count < Self.maximumMembers, PeerProtocol.problem(with: [update]) == nil
            else { continue }
            update.vouched = false
            if update.status == .suspect { update.status = .alive }
            let index = memberOrder.partitioningIndex { !($0 < update.id) }
            memberOrder.insert(update.id, at: index)
            members[update.id] = Member(update: update)
            vouched.insert(update.id)
        }
        assert(memberOrder.count == members.count, "Membership: the name order and the members differ")
    }

    /// Joins through `seeds` (peer addresses): asks each for the whole membership.
    public mutating func join(seeds: [String], now: Instant) -> [MembershipEffect] {
        eventTime = now
        self.seeds = seeds
        return seeds.filter { $0 != myAddress }.map { .send(to: $0, message(.join(nonce: newExchange(now: now)))) }
    }

    /// Leaves on purpose: tells a few members, who spread the word. Afterwards the node answers
    /// nothing and probes no one.
    public mutating func leave(now: Instant) -> [MembershipEffect] {
        eventTime = now
        leaving = true
        nextPeriod = now
        suspects = [:]
        probe = .idle
        return leavingTick(now: now)
    }

    /// While leaving, the node takes no part in failure detection; once a period it tells a few live
    /// members that it left (a message may be lost, and those who missed it would otherwise hold it
    /// dead once it is gone, not departed).
    private mutating func leavingTick(now: Instant) -> [MembershipEffect] {
        guard now >= nextPeriod else { return [] }
        nextPeriod = now.advanced(by: configuration.protocolPeriod)
        enqueueGossip(selfUpdate)
        let targets = liveMembers(reachedOnly: true).shuffled(using: &random).prefix(
            max(configuration.indirectProbes, 3))
        return targets.map { .send(to: member($0).address, message(.ping(sequence: nextSequence()))) }
    }

    /// Why a member cannot be forgotten.
    public enum ForgetRefusal: Error, Equatable, Sendable {
        /// No such member.
        case unknown
        /// It is alive or suspect: it must leave (or be declared dead) first.
        case notDead(MemberStatus)
    }

    /// Forgets a member that is dead for good: it is marked as having left, a claim above the death
    /// (one incarnation up) that spreads to the others like any other, so that none of them keeps
    /// syncing with it or lists it as dead. Should it come back after all, it refutes the claim (a
    /// member always may) and rejoins.
    public mutating func forget(_ id: NodeID, now: Instant) -> Result<[MembershipEffect], ForgetRefusal> {
        eventTime = now
        guard id != me, let current = members[id]?.update else { return .failure(.unknown) }
        guard !current.status.isLive else { return .failure(.notDead(current.status)) }
        guard current.status != .left else { return .success([]) }
        var update = current
        update.status = .left
        update.incarnation = min(current.incarnation, Self.maximumIncarnation - 1) + 1
        var effects: [MembershipEffect] = []
        apply(update, now: now, effects: &effects)
        return .success(effects)
    }

    /// Advances time: starts a protocol period when one is due, escalates or ends the current probe,
    /// and declares suspects dead whose time is up.
    public mutating func tick(now: Instant) -> [MembershipEffect] {
        eventTime = now
        guard !leaving else { return leavingTick(now: now) }
        var effects: [MembershipEffect] = []
        // Suspects whose time is up are declared dead, in name order.
        for id in suspects.keys.sorted() {
            guard let suspectedAt = suspects[id], suspectedAt.advanced(by: configuration.suspicionTimeout) <= now
            else { continue }
            var update = member(id)
            update.status = .dead
            apply(update, now: now, effects: &effects)
        }
        relays.removeAll { $0.expires <= now }
        confirmations = confirmations.filter { $0.value.expires > now }
        exchanges.removeAll { $0.expires <= now }
        forgotten = forgotten.filter { $0.value.until > now }
        if case .waiting(let target, let probeSequence, let indirectAt, let periodEnd, let askedOthers) = probe {
            if now >= periodEnd {
                // No ack, directly or through others: suspect the target.
                probe = .idle
                localHealth = min(localHealth + 1, Self.maximumLocalHealth)
                if var update = members[target]?.update, update.status == .alive {
                    update.status = .suspect
                    apply(update, now: now, effects: &effects)
                }
            } else if !askedOthers, now >= indirectAt {
                probe = .waiting(
                    target: target, sequence: probeSequence, indirectAt: indirectAt, periodEnd: periodEnd,
                    askedOthers: true)
                let address = member(target).address
                let helpers = liveMembers(reachedOnly: true).filter { $0 != target }.shuffled(using: &random).prefix(
                    configuration.indirectProbes)
                for helper in helpers {
                    effects.append(
                        .send(
                            to: member(helper).address,
                            message(.pingRequest(sequence: probeSequence, target: target, targetAddress: address))))
                }
            }
        }
        if now >= nextPeriod {
            // A node that holds every other member dead has no probe to time and nobody to be slow
            // with: it reaches out every period, unstretched, until someone answers (two sides of a
            // healed partition otherwise each wait many stretched periods to try).
            let alone = liveMembers(reachedOnly: true).isEmpty
            nextPeriod = now.advanced(by: configuration.protocolPeriod * (alone ? 1 : localHealth + 1))
            periods += 1
            if case .idle = probe, let target = nextProbeTarget() {
                let probeSequence = nextSequence()
                probe = .waiting(
                    target: target, sequence: probeSequence,
                    indirectAt: now.advanced(by: configuration.probeTimeout * (localHealth + 1)),
                    periodEnd: nextPeriod, askedOthers: false)
                effects.append(.send(to: member(target).address, message(.ping(sequence: probeSequence))))
            }
            if periods % configuration.syncEveryPeriods == 0 || alone {
                let live = liveMembers(reachedOnly: true)
                if let partner = live.randomElement(using: &random) {
                    effects.append(
                        .send(to: member(partner).address, message(.sync(nonce: newExchange(now: now), fullState))))
                } else {
                    // Alone: perhaps everyone else declared this node dead while it was cut off.
                    for seed in seeds where seed != myAddress {
                        effects.append(.send(to: seed, message(.join(nonce: newExchange(now: now)))))
                    }
                }
                // A seed this node has never heard of may lead a group that formed apart from this
                // one (after a full restart under a partition, say): two such groups never meet
                // unless one asks the other to let it join.
                let known = Set(members.values.map(\.update.address))
                let strangers = seeds.filter { $0 != myAddress && !known.contains($0) }
                if !live.isEmpty, let stranger = strangers.randomElement(using: &random) {
                    effects.append(.send(to: stranger, message(.join(nonce: newExchange(now: now)))))
                }
                // Reach out to one member held dead as well: if it is in fact running (it was cut
                // off, not crashed), it learns it was declared dead and comes back with a higher
                // incarnation. Without this, two sides that declared each other dead never talk again.
                let dead = memberOrder.filter { member($0).status == .dead }
                if let partner = dead.randomElement(using: &random) {
                    effects.append(
                        .send(to: member(partner).address, message(.sync(nonce: newExchange(now: now), fullState))))
                }
            }
        }
        return effects
    }

    /// Handles a message from a peer.
    public mutating func received(_ message: MembershipMessage, now: Instant) -> [MembershipEffect] {
        eventTime = now
        // A message that names this node as its sender is forged or misrouted: answering it would
        // have this node talk to itself.
        guard message.sender != me, message.senderAddress != myAddress else { return [] }
        defer { if vouched.contains(message.sender) { heardSinceStart = true } }
        // A node leaving still learns who is who (it hands its keys to the members it knows), but
        // never refutes its own departure (`apply`).
        var effects: [MembershipEffect] = []
        // The sender is alive at the incarnation it states: the freshest claim there is about it.
        apply(
            MemberUpdate(
                id: message.sender, address: message.senderAddress, clientAddress: message.senderClientAddress,
                incarnation: message.senderIncarnation, status: .alive),
            now: now, effects: &effects, fromSender: true)
        if members[message.sender] != nil { lastContact[message.sender] = now }
        defer {
            // After the body: the state answering this node's join vouches for its sender, and its
            // clock counts from that first message on.
            if vouched.contains(message.sender) {
                let lead = message.senderTime.nanoseconds(to: now)
                clockLeads[message.sender, default: ClockLeadSamples(first: lead, at: now)]
                    .add(lead, at: now, window: clockLeadWindow)
            }
        }
        for update in message.updates { apply(update, now: now, effects: &effects) }
        switch message.body {
        case .ping(let pingSequence):
            effects.append(
                .send(
                    to: message.senderAddress,
                    self.message(.ack(sequence: pingSequence, target: me), correcting: message.sender)))
        case .pingRequest(let requesterSequence, let target, let targetAddress):
            // A bound on probes run for others: a flood of requests must not grow the table.
            guard !relays.isFull else { break }
            let relaySequence = nextSequence()
            relays[relaySequence] = Relay(
                requesterAddress: message.senderAddress, requesterSequence: requesterSequence, target: target,
                expires: now.advanced(by: configuration.protocolPeriod))
            effects.append(.send(to: targetAddress, self.message(.ping(sequence: relaySequence))))
        case .ack(let ackSequence, let target):
            // Sequences are drawn at random and sent only to the member probed (or to the helpers
            // asked to probe it): an ack that names one is an answer from that member.
            if let relay = relays[ackSequence], relay.target == target {
                relays[ackSequence] = nil
                vouch(target, effects: &effects)
                effects.append(
                    .send(
                        to: relay.requesterAddress,
                        self.message(.ack(sequence: relay.requesterSequence, target: target))))
            } else if case .waiting(let probed, let probeSequence, _, _, _) = probe, probed == target,
                probeSequence == ackSequence
            {
                probe = .idle
                localHealth = max(localHealth - 1, 0)
                vouch(target, effects: &effects)
            } else if let confirmation = confirmations[ackSequence], confirmation.member == target {
                confirmations[ackSequence] = nil
                vouch(target, effects: &effects)
            }
        case .join(let nonce):
            effects.append(.send(to: message.senderAddress, self.message(.state(nonce: nonce, fullState))))
        case .state(let nonce, let updates):
            // The answer to this node's own join or sync: its sender was reached, and what it holds as
            // reached counts as such here too.
            let solicited = takeExchange(nonce)
            if solicited { vouch(message.sender, effects: &effects) }
            for update in updates {
                apply(update, now: now, effects: &effects, fromFullState: true, vouchedFor: solicited && update.vouched)
            }
        case .sync(let nonce, let updates):
            for update in updates { apply(update, now: now, effects: &effects, fromFullState: true) }
            effects.append(.send(to: message.senderAddress, self.message(.state(nonce: nonce, fullState))))
        }
        return effects
    }

    // MARK: Internals

    /// What this node believes about `id`, which it must know (every caller takes names from its own
    /// tables).
    private func member(_ id: NodeID) -> MemberUpdate {
        guard let member = members[id] else { preconditionFailure("Membership: \(id) is not a known member") }
        return member.update
    }

    /// A probe sequence no outsider can guess (answers that echo one come from whom it was sent to).
    private mutating func nextSequence() -> UInt64 {
        var sequence = random.next()
        while sequence == 0 || relays[sequence] != nil || confirmations[sequence] != nil { sequence = random.next() }
        return sequence
    }

    /// A nonce for a `join` or `sync`, remembered until its answer comes or two periods pass; the
    /// oldest is forgotten when too many wait.
    private mutating func newExchange(now: Instant) -> UInt64 {
        let nonce = random.next()
        if exchanges.count >= Self.maximumExchanges { exchanges.removeFirst() }
        exchanges.append((nonce, now.advanced(by: configuration.protocolPeriod * 2 + configuration.probeTimeout * 4)))
        return nonce
    }

    /// Whether `nonce` is one this node sent and has had no answer to yet (it is then spent).
    private mutating func takeExchange(_ nonce: UInt64) -> Bool {
        guard let index = exchanges.firstIndex(where: { $0.nonce == nonce }) else { return false }
        exchanges.remove(at: index)
        return true
    }

    /// This node's whole membership as a full state: each member marked with whether it is reached.
    private var fullState: [MemberUpdate] {
        view.map {
            var update = $0
            update.vouched = isVouched($0.id)
            return update
        }
    }

    /// Holds `id` as reached; its share of the ring follows (`vouched`).
    private mutating func vouch(_ id: NodeID, effects: inout [MembershipEffect]) {
        guard id != me, members[id] != nil, vouched.insert(id).inserted else { return }
        heardSinceStart = true
        persistentChanges.insert(id)
        effects.append(.reached(id))
    }

    /// Forgets a member that nobody vouched for once it is no longer live: it never owned keys, and
    /// claims about members that do not exist must not fill the table.
    /// How long a forgotten member's old claims are not believed: longer than a claim can go on
    /// being gossiped (its retransmissions, a period each at the most stretched) plus the suspicion
    /// others may still be timing.
    private var forgettingWindow: Duration {
        configuration.suspicionTimeout * 4
            + configuration.protocolPeriod * ((Self.maximumLocalHealth + 1) * max(10, retransmitLimit))
    }

    private mutating func remove(_ id: NodeID) {
        if let incarnation = members[id]?.update.incarnation {
            if forgotten.count >= Self.maximumForgotten,
                let oldest = forgotten.min(by: { $0.value.until < $1.value.until })
            {
                forgotten[oldest.key] = nil
            }
            forgotten[id] = (incarnation, eventTime.advanced(by: forgettingWindow))
        }
        members[id] = nil
        memberOrder.removeAll { $0 == id }
        // A probe of it in flight ends here: asking others to probe a member this node no longer
        // knows would send them a request without an address (which they would refuse).
        if case .waiting(let target, _, _, _, _) = probe, target == id { probe = .idle }
        suspects[id] = nil
        lastContact[id] = nil
        clockLeads[id] = nil
        gossip.removeAll { $0.update.id == id }
        confirmations = confirmations.filter { $0.value.member != id }
    }

    /// Members that are neither dead nor departed, excluding this node, in name order (only reached
    /// ones with `reachedOnly`: those asked to help with probes or to sync).
    private func liveMembers(reachedOnly: Bool = false) -> [NodeID] {
        memberOrder.filter { member($0).status.isLive && (!reachedOnly || vouched.contains($0)) }
    }

    /// The next member of the current shuffled round; a new round is shuffled when one ends.
    private mutating func nextProbeTarget() -> NodeID? {
        while true {
            if probeOrder.isEmpty {
                probeOrder = liveMembers().shuffled(using: &random)
                if probeOrder.isEmpty { return nil }
            }
            let candidate = probeOrder.removeLast()
            if members[candidate]?.update.status.isLive == true { return candidate }
        }
    }

    /// A message with this node as sender and the least-sent pending claims piggybacked. When
    /// `recipient` is a member this node holds suspect, dead or departed, that claim goes first: a
    /// member can only refute what it hears, and gossip about it may long have run out.
    private mutating func message(
        _ body: MembershipMessageBody, correcting recipient: NodeID? = nil
    ) -> MembershipMessage {
        let limit = retransmitLimit
        var indices = Array(gossip.indices)
        // Fewest transmissions first; among equals the newest claim (appended last) first, as
        // memberlist does: otherwise a fresh claim waits behind every old one never yet sent.
        indices.sort {
            gossip[$0].transmissions != gossip[$1].transmissions
                ? gossip[$0].transmissions < gossip[$1].transmissions : $0 > $1
        }
        var updates: [MemberUpdate] = []
        for index in indices.prefix(configuration.maximumPiggybackedUpdates) {
            updates.append(gossip[index].update)
            gossip[index].transmissions += 1
        }
        gossip.removeAll { $0.transmissions >= limit }
        if let recipient, let claim = members[recipient]?.update, claim.status != .alive,
            !updates.contains(claim)
        {
            updates.insert(claim, at: 0)
        }
        return MembershipMessage(
            sender: me, senderAddress: myAddress, senderClientAddress: myClientAddress, senderIncarnation: incarnation,
            senderTime: eventTime,
            updates: updates.map {
                var update = $0; update.vouched = false; return update
            },
            body: body)
    }

    /// λ·⌈log₂(n + 1)⌉ transmissions per claim.
    private var retransmitLimit: Int {
        let count = members.count + 1
        return configuration.retransmitMultiplier * max(1, (Int.bitWidth - (count + 1).leadingZeroBitCount))
    }

    private mutating func enqueueGossip(_ update: MemberUpdate) {
        gossip.removeAll { $0.update.id == update.id }
        gossip.append((update, 0))
        // One claim per member at most: the queue is bounded by the membership, which is bounded.
        assert(gossip.count <= members.count + 1, "Membership: the gossip queue outgrew the membership")
    }

    /// Applies a claim if it overrides what this node believes, refuting claims about itself.
    private mutating func apply(
        _ update: MemberUpdate, now: Instant, effects: inout [MembershipEffect], fromSender: Bool = false,
        fromFullState: Bool = false, vouchedFor: Bool = false
    ) {
        var update = update
        update.vouched = false
        // Claims that jump a member's incarnation far past what this node knows are not believed:
        // a member raises its own by one per refutation.
        let known = update.id == me ? incarnation : members[update.id]?.update.incarnation ?? 0
        guard update.incarnation <= known.addingSaturated(Self.maximumIncarnationStep),
            update.incarnation <= Self.maximumIncarnation
        else {
            claimsIgnored &+= 1
            return
        }
        if update.id == me {
            // Only this node raises its incarnation: any suspicion or death at or above the current
            // one is refuted with a higher one.
            if update.status != .alive, update.incarnation >= incarnation, !leaving {
                incarnation = min(update.incarnation, Self.maximumIncarnation - 1) + 1
                enqueueGossip(selfUpdate)
                // Others suspect this node: perhaps it is the one that is slow.
                localHealth = min(localHealth + 1, Self.maximumLocalHealth)
            }
            return
        }
        // What a reached member holds as reached counts here too, whatever its claim's status.
        if vouchedFor, members[update.id] != nil { vouch(update.id, effects: &effects) }
        if let current = members[update.id]?.update {
            // The sender's own liveness counts only at an incarnation newer than a death we know of.
            if fromSender, !current.status.isLive, update.incarnation <= current.incarnation { return }
            let wins =
                configuration.injectedBug == .ignoreIncarnations
                ? update.status.rank > current.status.rank
                : update.overrides(current)
                    || (update.address != current.address && update.incarnation > current.incarnation)
            guard wins else { return }
        }
        let previous = members[update.id]?.update.status
        let addressChanged = members[update.id].map { $0.update.address != update.address } ?? true
        // A member nobody reached is forgotten once it is no longer live (it never owned keys), and
        // one first heard of as dead or departed is news only from a member that reached it: anyone
        // can claim that a member nobody knows has died.
        if !update.status.isLive, !vouched.contains(update.id), !vouchedFor {
            if previous != nil {
                remove(update.id)
                effects.append(.statusChanged(update.id, update.status))
            }
            return
        }
        // A member forgotten for nobody reaching it comes back only at a higher incarnation (it is
        // real and refuted its death), or on a reached member's word.
        if previous == nil, !vouchedFor, let gone = forgotten[update.id], update.incarnation <= gone.incarnation {
            return
        }
        // A bound on the table: claims about one more member than a cluster may have are dropped
        // (peers are input; a broken or hostile one must not grow it without end).
        if previous == nil, members.count >= Self.maximumMembers { return }
        if previous == nil {
            // Keep the names sorted as they arrive, so no event has to sort them.
            let index = memberOrder.partitioningIndex { !($0 < update.id) }
            memberOrder.insert(update.id, at: index)
        }
        members[update.id] = Member(update: update)
        if vouched.contains(update.id) { persistentChanges.insert(update.id) }
        suspects[update.id] = update.status == .suspect ? now : nil
        if vouchedFor { vouch(update.id, effects: &effects) }
        // A live member this node has not reached is pinged at once (again when it moved): its ack
        // vouches for it, long before the probe round would come to it.
        if !vouched.contains(update.id), addressChanged, confirmations.count < Self.maximumMembers {
            let sequence = nextSequence()
            confirmations[sequence] = (
                update.id, now.advanced(by: configuration.protocolPeriod + configuration.probeTimeout)
            )
            effects.append(.send(to: update.address, message(.ping(sequence: sequence))))
        }
        // Gossip what changed. A member first met in a full-state exchange is not gossiped: push-pull
        // is its own way of spreading, and re-gossiping a whole membership would bury fresh claims
        // under a backlog of old ones for many periods.
        let isNews = fromSender ? previous != .alive : !(fromFullState && previous == nil)
        if isNews { enqueueGossip(update) }
        if previous != update.status { effects.append(.statusChanged(update.id, update.status)) }
    }
}

extension UInt64 {
    /// `self + other`, or `.max` where that overflows.
    fileprivate func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

extension Array {
    /// The first index whose element satisfies `belongs`, for a predicate that is false then true.
    fileprivate func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

/// What one member's messages told of this node's clock lead over its own (nanoseconds; negative
/// when behind): each reading is the true lead plus the message's delay in transit, so the smallest
/// reading of a recent span is the best estimate, and the latest the most cautious one.
struct ClockLeadSamples {
    /// The last reading.
    private(set) var latest: Int64
    /// The smallest reading since `windowStart`.
    private var currentSmallest: Int64
    private var windowStart: Instant
    /// The smallest reading of the window before (the last one with readings).
    private var previousSmallest: Int64?

    init(first lead: Int64, at now: Instant) {
        latest = lead
        currentSmallest = lead
        windowStart = now
    }

    /// The smallest reading of the last one to two windows.
    var smallest: Int64 { min(currentSmallest, previousSmallest ?? currentSmallest) }

    mutating func add(_ lead: Int64, at now: Instant, window: Duration) {
        precondition(window > .zero, "a clock lead window of no length")
        latest = lead
        let elapsed = windowStart.nanoseconds(to: now)
        guard elapsed >= window.nanoseconds else {
            currentSmallest = min(currentSmallest, lead)
            return
        }
        // A window ended: it becomes the previous one, even after a silence of many windows. The
        // first readings after a silence are the likeliest to be late (messages queued while this
        // node was paused, or the path was stalled), so the reading before it still counts for one
        // window: with nothing to compare them with, a resumed node took itself as ahead and
        // refused writes (ReplicationTests.messagesQueuedDuringAPauseDoNotMakeAClockAhead).
        previousSmallest = currentSmallest
        currentSmallest = lead
        windowStart = now
    }
}
