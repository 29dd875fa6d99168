/// A request this node coordinates over a key's replicas.
struct Coordination: Sendable {
    /// Where the request stands; each phase carries exactly what it needs.
    enum Phase: Sendable {
        /// A write at `quorum` or `all` first asks replicas for the versions they hold (ABD's first
        /// phase), so that its own version is above every write that completed before it began.
        case querying(entry: VersionedEntry, answered: [NodeID], required: Int)
        /// A write sends `entry` until `required` replicas hold it (or a newer one).
        case writing(entry: VersionedEntry, holders: [NodeID], existed: Bool)
        /// A read gathers answers until `required` replicas answered.
        case reading(replies: [(node: NodeID, entry: VersionedEntry?)])
        /// A read's newest answer is on too few replicas for a later read to be sure to see it: it is
        /// written back until a majority holds it, then answered.
        case repairing(chosen: VersionedEntry, holders: [NodeID])
    }

    /// A node a phase may ask, and where its attempts stand.
    struct Target: Sendable {
        /// Where one target stands in the current phase.
        enum State: Sendable, Equatable {
            /// Not asked yet (a phase asks only as many as it needs at first): asked at `askAt` if
            /// the answers it needs have not come by then (a speculative retry).
            case notAsked(askAt: Instant)
            /// Asked `attempts` times; asked again at `next` unless it answers.
            case asked(attempts: Int, next: Instant)
            /// Answered (or refused) in the current phase: no more attempts.
            case answered
        }

        var node: NodeID
        /// The replica this node stands in for (sloppy quorum), or `nil` for a replica itself.
        var standsInFor: NodeID?
        var state: State

        var isOpen: Bool { state != .answered }

        /// When this target is next asked, if it is open.
        var nextAttempt: Instant? {
            switch state {
            case .notAsked(let askAt): askAt
            case .asked(_, let next): next
            case .answered: nil
            }
        }

        /// Times asked so far in the phase.
        var attempts: Int {
            if case .asked(let attempts, _) = state { return attempts }
            return 0
        }

        /// The target is asked (again) now; its next attempt is at `next`.
        mutating func askedAgain(next: Instant) {
            precondition(isOpen, "Coordination: asking \(node) again after it answered")
            state = .asked(attempts: attempts + 1, next: next)
        }

        /// The target answered in this phase.
        mutating func answered() {
            precondition(isOpen, "Coordination: \(node) answered twice in one phase")
            state = .answered
        }
    }

    var client: UInt64
    var key: KeyReference
    var level: ConsistencyLevel
    var phase: Phase
    var replicas: [NodeID]
    var targets: [Target]
    /// Replicas whose answers the level needs.
    var required: Int
    var deadline: Instant
    /// Stand-ins that stored the write (for the reply's `hinted`).
    var standInsHolding: [NodeID] = []

    var nextDeadline: Instant {
        var next = deadline
        for target in targets {
            if let attempt = target.nextAttempt { next = min(next, attempt) }
        }
        return next
    }

    var isWrite: Bool {
        switch phase {
        case .querying, .writing: true
        case .reading, .repairing: false
        }
    }

    /// How many answered towards the current phase (what a failure reports).
    var answered: Int {
        switch phase {
        case .querying(_, let answered, _): answered.count
        case .writing(_, let holders, _): holders.count
        case .reading(let replies): replies.count
        case .repairing(_, let holders): holders.count
        }
    }

    /// How many answers the current phase needs before it ends: computed here only.
    var need: Int {
        switch phase {
        case .querying(_, _, let required): required
        case .writing, .reading: required
        // A read's answer must be on a majority of the replicas before it is returned.
        case .repairing: ConsistencyLevel.quorum.required(of: replicas.count)
        }
    }

    /// How many targets a phase asks at once when it begins: a write every replica; a read or a
    /// first phase only as many as it needs (the others after the first backoff, if still needed).
    var askedAtFirst: Int {
        switch phase {
        case .querying, .reading: need
        case .writing, .repairing: replicas.count
        }
    }

    /// The open target on `node`, if any (an answer from elsewhere, or a second one, is ignored).
    func openTarget(_ node: NodeID) -> Int? {
        targets.firstIndex { $0.node == node && $0.isOpen }
    }

    var openTargets: Int { targets.count(where: \.isOpen) }

    /// Every target asked afresh for a new phase, the ones in `answered` counted as answered already.
    mutating func restartTargets(answered: [NodeID] = [], firstAttempt: Instant) {
        for index in targets.indices {
            targets[index].state =
                answered.contains(targets[index].node) ? .answered : .asked(attempts: 1, next: firstAttempt)
        }
    }
}

extension ClusterNode {
    // MARK: Starting

    /// A client's request, as it comes or once it has waited for the clock: refused past its
    /// deadline, held while the clock is not safe, coordinated otherwise.
    mutating func take(client: UInt64, _ operation: ClientOperation, deadline: Instant?, now: Instant) {
        if isPastDeadline(operation, deadline, now: now) {
            refusePastDeadline(client)
        } else if mustWaitForClock(operation, now: now) {
            awaitClock(client: client, operation, deadline: deadline)
        } else {
            startCoordination(client: client, operation, now: now)
        }
    }

    /// Whether a client's `operation` must wait before the clock versions it (`versionsSafeAfter`):
    /// a write, early after the start, to a key that has other replicas. A key this node alone
    /// holds needs no wait: its store holds the key's newest version, and the clock is past it.
    func mustWaitForClock(_ operation: ClientOperation, now: Instant) -> Bool {
        guard now <= versionsSafeAfter else { return false }
        switch operation {
        case .get: return false
        case .put(let key, _, _, _), .delete(let key, _): return replicas(of: KeyReference(key)) != selfOnly
        }
    }

    /// Whether `operation` is a write whose client's deadline passed: the client has given up on
    /// it, and may have made the write again through another node since. Made now, this copy
    /// would take a newer version than that retry and every write after it (seen on real
    /// processes: a node paused with a request in its socket made it 7 s later, after the load).
    /// Reads are answered however late: nobody waits for them, and they change nothing.
    /// A node whose clock runs ahead of its members' refuses writes for that, the documented
    /// reason, rather than judge deadlines by a clock it knows is wrong.
    func isPastDeadline(_ operation: ClientOperation, _ deadline: Instant?, now: Instant) -> Bool {
        guard let deadline, now > deadline, !isClockAhead else { return false }
        if case .get = operation { return false }
        return true
    }

    mutating func refusePastDeadline(_ client: UInt64) {
        counters.writesPastDeadline &+= 1
        let message = "the write's \(ClientDeadline.header) passed before this node could take it: not made"
        reply(client, .invalid(RequestError(.deadlinePassed, message)), replicas: [])
    }

    /// Holds a write until the clock is safe (`mustWaitForClock`); refused when too many wait.
    mutating func awaitClock(client: UInt64, _ operation: ClientOperation, deadline: Instant?) {
        guard !writesAwaitingClock.isFull else {
            reply(
                client,
                .overloaded(reason: "\(writesAwaitingClock.count) writes wait for this node's clock after its start"),
                replicas: [])
            return
        }
        counters.writesDelayedForClock &+= 1
        writesAwaitingClock.append((client: client, operation: operation, deadline: deadline))
    }

    mutating func startCoordination(client: UInt64, _ operation: ClientOperation, now: Instant) {
        let key: KeyReference
        let level: ConsistencyLevel
        var entry: VersionedEntry?
        switch operation {
        case .get(let getKey, let consistency):
            counters.gets &+= 1
            key = KeyReference(getKey)
            level = consistency ?? configuration.readConsistency
        case .put(let putKey, let value, let ttl, let consistency):
            if let rejection = store.validate(keyCount: putKey.count, valueCount: value.count) {
                reply(client, .invalid(rejection.requestError), replicas: [])
                return
            }
            // Peers refuse an expiry further than the longest TTL after its version (a client's
            // absolute expiry far in the future would otherwise make a frame no replica accepts).
            if case .after(let duration) = ttl, duration > .seconds(PutRequest.maximumTTLSeconds) {
                let message = "time to live exceeds the longest, \(PutRequest.maximumTTLSeconds) seconds (100 years)"
                reply(client, .invalid(RequestError(.badRequest, message)), replicas: [])
                return
            }
            counters.puts &+= 1
            key = KeyReference(putKey)
            let expiresAt: Instant?
            switch ttl {
            case .never: expiresAt = nil
            case .after(let duration): expiresAt = now.advanced(by: duration)
            case .nodeDefault: expiresAt = configuration.defaultTimeToLive.map { now.advanced(by: $0) }
            }
            entry = VersionedEntry(version: clock.next(physical: now), value: value, expiresAt: expiresAt)
            level = consistency ?? configuration.writeConsistency
        case .delete(let deleteKey, let consistency):
            if let rejection = store.validate(keyCount: deleteKey.count, valueCount: 0), case .emptyKey = rejection {
                reply(client, .invalid(rejection.requestError), replicas: [])
                return
            }
            counters.deletes &+= 1
            key = KeyReference(deleteKey)
            entry = VersionedEntry(version: clock.next(physical: now), value: nil, expiresAt: nil)
            level = consistency ?? configuration.writeConsistency
        }
        guard !isJoining else {
            reply(client, .notReady(reason: "joining the cluster: no seed has answered yet"), replicas: [])
            return
        }
        // A write versioned by a clock ahead of the members' would be refused by its replicas (or,
        // taken by this node's own, outrank the writes others make meanwhile): refuse it here.
        if isClockAhead, entry != nil, configuration.injectedBug != .adoptClocksPastTheBound {
            counters.writesRefusedForClock &+= 1
            reply(
                client,
                .refused(
                    reason:
                        "this node's clock is ahead of most members' by more than \(configuration.maximumClockOffset)"),
                replicas: [])
            return
        }
        let replicas = replicas(of: key)
        guard !replicas.isEmpty else {
            // No member owns keys (this node alone, leaving): nobody can take the request.
            reply(client, .unavailable(level: level, answered: 0, required: 1), replicas: [])
            return
        }
        // The key's only replica is this node: no one to ask, nothing to coordinate. Its clock is
        // above every version its store holds, so a write needs no first phase.
        if replicas.count == 1, replicas[0] == me {
            if let entry {
                writeLocally(client: client, key: key, entry, now: now)
            } else {
                readLocally(client: client, key: key, level: level, now: now)
            }
            return
        }
        guard !coordinations.isFull else {
            reply(
                client, .overloaded(reason: "\(coordinations.count) requests in flight on this node"),
                replicas: replicas)
            return
        }
        let phase: Coordination.Phase
        if let entry {
            if level == .one {
                phase = .writing(entry: entry, holders: [], existed: false)
            } else {
                // Every write at `quorum` or `all` that completed before this one is on a majority of
                // the replicas, so any `N - majority + 1` of them include one that holds it.
                let asked = replicas.count - ConsistencyLevel.quorum.required(of: replicas.count) + 1
                phase = .querying(entry: entry, answered: [], required: asked)
            }
        } else {
            phase = .reading(replies: [])
        }
        let id = newRequestID()
        var coordination = Coordination(
            client: client, key: key, level: level, phase: phase, replicas: replicas, targets: [],
            required: level.required(of: replicas.count), deadline: now.advanced(by: configuration.requestTimeout))
        // A phase that needs k answers asks k replicas: this node first (no message), then those
        // alive, in preference order. The others are asked only if an answer is late (a speculative
        // retry after the first backoff) or missing. Writes go to every replica.
        let needed = coordination.askedAtFirst
        let order = replicas.enumerated().sorted { lhs, rhs in
            func rank(_ node: NodeID) -> Int { node == me ? 0 : membership.status(of: node) == .alive ? 1 : 2 }
            return (rank(lhs.element), lhs.offset) < (rank(rhs.element), rhs.offset)
        }.map(\.element)
        for (index, replica) in order.enumerated() {
            let next = now.advanced(by: backoff(attempt: 0))
            let state: Coordination.Target.State =
                index < needed ? .asked(attempts: 1, next: next) : .notAsked(askAt: next)
            coordination.targets.append(Coordination.Target(node: replica, state: state))
        }
        coordinations[id] = coordination
        for replica in order.prefix(needed) { ask(replica, for: id) }
    }

    /// Sends the request's message for its current phase to `node` (again).
    mutating func ask(_ node: NodeID, for id: UInt64) {
        guard let coordination = coordinations[id] else { return }
        switch coordination.phase {
        case .querying, .reading:
            send(.read(request: id, key: coordination.key.bytes), to: node)
        case .writing(let entry, _, _):
            send(.write(request: id, key: coordination.key.bytes, entry: entry, repair: false), to: node)
        case .repairing(let chosen, _):
            send(.write(request: id, key: coordination.key.bytes, entry: chosen, repair: true), to: node)
        }
    }

    // MARK: The key's only replica is this node

    mutating func writeLocally(client: UInt64, key: KeyReference, _ entry: VersionedEntry, now: Instant) {
        if let overload = durabilityOverload {
            reply(client, .overloaded(reason: overload), replicas: selfOnly)
            return
        }
        let previousWasLive: Bool
        switch store.check(key, entry, now: now) {
        case .applied(let wasLive):
            previousWasLive = wasLive
        case .notAdmitted:
            reply(
                client, .refused(reason: "the store cannot take a write from \(entry.version.node)"), replicas: selfOnly
            )
            return
        case .duplicate, .stale:
            preconditionFailure("a new version from this node's clock is not the newest of \(key)")
        }
        let sequence: UInt64?
        switch logEntry(key, entry) {
        case .refused(let reason):
            reply(client, .refused(reason: reason), replicas: selfOnly)
            return
        case .logged(let appended):
            sequence = appended
        }
        store.apply(key, entry, now: now)
        let outcome: ClientOutcome =
            entry.value == nil
            ? .deleted(existed: previousWasLive, version: entry.version)
            : .stored(version: entry.version, expiresAt: entry.expiresAt)
        replyWhenDurable(sequence, ClientReply(request: client, outcome: outcome, replicas: selfOnly, hinted: false))
    }

    mutating func readLocally(client: UInt64, key: KeyReference, level: ConsistencyLevel, now: Instant) {
        if isUnsafeToRead(key) {
            reply(client, .unavailable(level: level, answered: 0, required: 1), replicas: selfOnly)
            return
        }
        let outcome: ClientOutcome
        if let entry = store.read(key, now: now), entry.isLive(at: now) {
            counters.hits &+= 1
            outcome = .found(entry)
        } else {
            counters.misses &+= 1
            outcome = .notFound
        }
        replyWhenDurable(
            pendingSequence(of: key), ClientReply(request: client, outcome: outcome, replicas: selfOnly, hinted: false))
    }

    // MARK: Timers

    mutating func coordinationTimers(now: Instant) {
        // Only the requests whose deadline has come: the table keeps their deadlines in a heap.
        for id in coordinations.due(at: now) {
            guard var coordination = coordinations[id] else { continue }
            if now >= coordination.deadline {
                fail(id)
                continue
            }
            var retry: [NodeID] = []
            var standIns: [NodeID] = []
            for index in coordination.targets.indices {
                guard let attempt = coordination.targets[index].nextAttempt, now >= attempt else { continue }
                let attempts = coordination.targets[index].attempts + 1
                coordination.targets[index].askedAgain(next: now.advanced(by: backoff(attempt: attempts)))
                retry.append(coordination.targets[index].node)
                // A replica the failure detector suspects, or that missed three attempts, gets a
                // stand-in; a lost message or two only gets a retry.
                let target = coordination.targets[index]
                if target.standsInFor == nil, !standInAsked(for: target.node, in: coordination),
                    target.attempts >= 4 || membership.status(of: target.node) != .alive
                {
                    standIns.append(target.node)
                }
            }
            if configuration.sloppyQuorum, case .writing = coordination.phase {
                for silent in standIns {
                    guard let standIn = nextStandIn(for: coordination) else { break }
                    coordination.targets.append(
                        Coordination.Target(
                            node: standIn, standsInFor: silent,
                            state: .asked(attempts: 1, next: now.advanced(by: backoff(attempt: 1)))))
                    retry.append(standIn)
                }
            }
            coordinations[id] = coordination
            for node in retry { ask(node, for: id) }
        }
    }

    /// Hinted handoff: a write answered while some of its replicas are down (not alive to the
    /// failure detector, and silent) is also sent to a stand-in for each, which keeps it and hands
    /// it over when the replica is back. Returns whether any was sent.
    mutating func leaveHints(of entry: VersionedEntry, for coordination: Coordination) -> Bool {
        guard configuration.sloppyQuorum else { return false }
        var asked = coordination
        var sent = false
        for target in coordination.targets
        where target.isOpen && target.standsInFor == nil && membership.status(of: target.node) != .alive
            && !standInAsked(for: target.node, in: asked)
        {
            guard let standIn = nextStandIn(for: asked) else { break }
            // Only to know whom it asked: this copy is not kept, and the stand-in's answer has no request.
            asked.targets.append(
                Coordination.Target(node: standIn, standsInFor: target.node, state: .answered))
            send(.write(request: nil, key: coordination.key.bytes, entry: entry, repair: false), to: standIn)
            sent = true
        }
        return sent
    }

    func standInAsked(for replica: NodeID, in coordination: Coordination) -> Bool {
        coordination.targets.contains { $0.standsInFor == replica }
    }

    /// The first alive key owner past the key's replicas that is not asked yet.
    func nextStandIn(for coordination: Coordination) -> NodeID? {
        let asked = Set(coordination.targets.map(\.node))
        let extended = ring.preferenceList(forPosition: coordination.key.position, count: ring.members.count)
        return extended.first { !asked.contains($0) && membership.status(of: $0) == .alive }
    }

    // MARK: Answers

    mutating func writeReplied(_ id: UInt64, from node: NodeID, _ result: ReplicaWriteResult, now: Instant) {
        guard var coordination = coordinations[id],
            let index = coordination.openTarget(node)
        else { return }
        switch coordination.phase {
        case .querying, .reading:
            // A late answer to a write's earlier phase, or a reply that does not belong here.
            return
        case .repairing(let chosen, var holders):
            coordination.targets[index].answered()
            switch result {
            case .stored, .stale:
                if !holders.contains(node) { holders.append(node) }
            case .refused:
                break
            }
            coordination.phase = .repairing(chosen: chosen, holders: holders)
            coordinations[id] = coordination
            if holders.count >= coordination.need {
                answer(id, .found(chosen, key: coordination.key.bytes, now: now))
            } else {
                failIfSettled(id)
            }
        case .writing(let entry, var holders, var existed):
            coordination.targets[index].answered()
            if coordination.targets[index].standsInFor != nil, configuration.injectedBug != .countStandIns {
                // A stand-in keeps the write for the replica it stands in for and hands it over
                // later; it does not count towards the level (a strict quorum: a minority of the
                // replicas, cut off from the rest, cannot acknowledge a write through stand-ins).
                if case .stored = result { coordination.standInsHolding.append(node) }
                coordinations[id] = coordination
                failIfSettled(id)
                return
            }
            switch result {
            case .stored, .stale:
                // A replica that holds a newer version holds the outcome of this write followed by a
                // later one: it counts, as in ABD, where replicas keep the greatest tag and answer.
                if case .stored(let previousWasLive) = result { existed = existed || previousWasLive }
                holders.append(node)
                coordination.phase = .writing(entry: entry, holders: holders, existed: existed)
                coordinations[id] = coordination
                if holders.count >= coordination.need || configuration.injectedBug == .acknowledgeBelowLevel {
                    let outcome: ClientOutcome =
                        entry.value == nil
                        ? .deleted(existed: existed, version: entry.version)
                        : .stored(version: entry.version, expiresAt: entry.expiresAt)
                    answer(id, outcome)
                } else {
                    failIfSettled(id)
                }
            case .refused:
                coordinations[id] = coordination
                failIfSettled(id)
            }
        }
    }

    mutating func readReplied(_ id: UInt64, from node: NodeID, _ entry: VersionedEntry?, now: Instant) {
        guard var coordination = coordinations[id],
            let index = coordination.openTarget(node)
        else { return }
        switch coordination.phase {
        case .writing, .repairing:
            // A late answer to a first phase, once the request has moved on.
            return
        case .querying(let entry, var answered, let required):
            coordination.targets[index].answered()
            answered.append(node)
            coordination.phase = .querying(entry: entry, answered: answered, required: required)
            coordinations[id] = coordination
            guard answered.count >= coordination.need else { return failIfSettled(id) }
            versionsReplied(id, now: now)
        case .reading(var replies):
            coordination.targets[index].answered()
            replies.append((node, entry))
            coordination.phase = .reading(replies: replies)
            coordinations[id] = coordination
            guard replies.count >= coordination.need else { return failIfSettled(id) }
            readAnswered(id, coordination, replies: replies, now: now)
        }
    }

    /// A read has the answers its level needs: answer with the newest, after writing it back to a
    /// majority when fewer hold it.
    mutating func readAnswered(
        _ id: UInt64, _ read: Coordination, replies: [(node: NodeID, entry: VersionedEntry?)], now: Instant
    ) {
        guard case .reading = read.phase else { preconditionFailure("readAnswered outside a read's phase") }
        precondition(replies.count >= read.need, "readAnswered before the read had its answers")
        var coordination = read
        let chosen: VersionedEntry?
        if configuration.injectedBug == .readFirstReply {
            chosen = replies[0].entry
        } else {
            chosen = replies.compactMap(\.entry).max { $0.version < $1.version }
        }
        // Stale answers are repaired in any case; the read waits for the repair when it must.
        guard let chosen else {
            answer(id, .notFound)
            return
        }
        let stale = replies.filter { reply in reply.entry.map { $0.version < chosen.version } ?? true }.map(\.node)
        let holders = replies.filter { $0.entry?.version == chosen.version }.map(\.node)
        coordination.phase = .repairing(chosen: chosen, holders: holders)
        if coordination.level == .one || holders.count >= coordination.need {
            for node in stale {
                send(.write(request: nil, key: coordination.key.bytes, entry: chosen, repair: true), to: node)
            }
            counters.readRepairs &+= UInt64(stale.count)
            answer(id, .found(chosen, key: coordination.key.bytes, now: now))
            return
        }
        counters.readRepairs &+= UInt64(stale.count)
        coordination.restartTargets(answered: holders, firstAttempt: now.advanced(by: backoff(attempt: 1)))
        coordinations[id] = coordination
        for target in coordination.targets where target.isOpen { ask(target.node, for: id) }
    }

    /// A write's first phase has its answers: take a version above all of them and write it.
    mutating func versionsReplied(_ id: UInt64, now: Instant) {
        guard var coordination = coordinations[id], case .querying(var entry, _, _) = coordination.phase else {
            preconditionFailure("versionsReplied outside a write's first phase")
        }
        precondition(coordination.answered >= coordination.need, "versionsReplied before the phase had its answers")
        // Every answer's version was observed by the clock as it arrived (`received`).
        entry.version = clock.next(physical: now)
        coordination.phase = .writing(entry: entry, holders: [], existed: false)
        coordination.restartTargets(firstAttempt: now.advanced(by: backoff(attempt: 1)))
        coordinations[id] = coordination
        for target in coordination.targets { ask(target.node, for: id) }
    }

    mutating func answer(_ id: UInt64, _ outcome: ClientOutcome) {
        guard let coordination = coordinations.removeValue(forKey: id) else { return }
        var hinted = !coordination.standInsHolding.isEmpty
        if case .writing(let entry, _, _) = coordination.phase {
            hinted = leaveHints(of: entry, for: coordination) || hinted
        }
        switch outcome {
        case .found: counters.hits &+= 1
        case .notFound: counters.misses &+= 1
        case .unavailable: counters.unavailable &+= 1
        default: break
        }
        effects.append(
            .reply(
                ClientReply(
                    request: coordination.client, outcome: outcome, replicas: coordination.replicas, hinted: hinted)))
    }

    /// Answers that the request's level was not met, and how many replicas did answer.
    mutating func fail(_ id: UInt64) {
        guard let coordination = coordinations[id] else { return }
        if configuration.injectedBug == .misreportUnmetLevel {
            answer(id, .invalid(RequestError(.badRequest, "request failed")))
            return
        }
        answer(
            id,
            .unavailable(level: coordination.level, answered: coordination.answered, required: coordination.required))
    }

    /// Fails a request that every target has answered (or refused) without meeting its phase's
    /// need. One that can no longer succeed but still waits for answers waits for them, so that
    /// its failure says how many replicas did answer, one round trip later.
    mutating func failIfSettled(_ id: UInt64) {
        guard let coordination = coordinations[id], coordination.openTargets == 0 else { return }
        if coordination.answered < coordination.need { fail(id) }
    }

    /// A message to `address` could not be sent: for a request this node coordinates, the replica
    /// there counts as refusing, so that a request that cannot meet its level fails once the others
    /// have answered instead of at its timeout.
    mutating func undeliverable(_ message: PeerMessage, to address: String, now: Instant) {
        guard case .replication(let replication) = message else { return }
        let request: UInt64
        switch replication.body {
        case .write(let number?, _, _, _), .read(let number, _): request = number
        default: return
        }
        guard var coordination = coordinations[request],
            let node = addresses.first(where: { $0.value == address })?.key,
            let index = coordination.openTarget(node)
        else { return }
        switch coordination.phase {
        case .writing, .repairing:
            writeReplied(request, from: node, .refused(reason: "peer \(address) unreachable"), now: now)
        case .querying, .reading:
            coordination.targets[index].answered()
            coordinations[request] = coordination
            failIfSettled(request)
        }
    }

    /// Answers a client at once, without a coordination.
    mutating func reply(_ client: UInt64, _ outcome: ClientOutcome, replicas: [NodeID]) {
        if case .unavailable = outcome { counters.unavailable &+= 1 }
        effects.append(.reply(ClientReply(request: client, outcome: outcome, replicas: replicas, hinted: false)))
    }
}

extension ClusterNode.ClientOutcome {
    /// What a read of `entry` answers at `now`: the value, unless it is a tombstone or has expired.
    static func found(_ entry: VersionedEntry, key: [UInt8], now: Instant) -> Self {
        guard entry.isLive(at: now) else { return .notFound }
        return .found(StoredEntry(key: key, entry))
    }
}
