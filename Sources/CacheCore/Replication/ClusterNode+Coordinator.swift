/// A request this node coordinates over a key's replicas.
struct Coordination: Sendable {
    enum Kind: Sendable {
        /// A put (value) or a delete (tombstone).
        case write(VersionedEntry)
        case read
    }

    /// A node asked, and where its attempts stand.
    struct Target: Sendable {
        var node: NodeID
        /// The replica this node stands in for (sloppy quorum), or `nil` for a replica itself.
        var standsInFor: NodeID?
        var attempts = 1
        var nextAttempt: Instant
        /// Answered (or refused): no more attempts.
        var done = false
    }

    var client: UInt64
    var key: [UInt8]
    var level: ConsistencyLevel
    var kind: Kind
    var replicas: [NodeID]
    var targets: [Target]
    var required: Int
    var deadline: Instant
    /// Writes above level `one` first ask `queryQuorum` replicas for their versions, so that the
    /// write's version is above every write that completed before it began (ABD's first phase).
    var querying = false
    var queryQuorum = 0
    /// Writes: the nodes that hold the write durably. Reads being repaired: the nodes that hold the
    /// chosen version (or newer).
    var holders: [NodeID] = []
    var existed = false
    /// Reads: every answer so far.
    var replies: [(node: NodeID, entry: VersionedEntry?)] = []
    /// Reads: the version being written back before the read may answer.
    var repairing: VersionedEntry??

    var nextDeadline: Instant {
        var next = deadline
        for target in targets where !target.done { next = min(next, target.nextAttempt) }
        return next
    }
}

extension ClusterNode {
    // MARK: Starting

    mutating func startCoordination(client: UInt64, _ operation: ClientOperation, now: Instant) {
        let key: [UInt8]
        let kind: Coordination.Kind
        let level: ConsistencyLevel
        switch operation {
        case .get(let getKey, let consistency):
            key = getKey
            kind = .read
            level = consistency ?? configuration.readConsistency
        case .put(let putKey, let value, let ttl, let consistency):
            key = putKey
            let expiresAt = ttl.map { now.advanced(byNanoseconds: $0) }
            kind = .write(VersionedEntry(version: clock.next(physical: now), value: value, expiresAt: expiresAt))
            level = consistency ?? configuration.writeConsistency
        case .delete(let deleteKey, let consistency):
            key = deleteKey
            kind = .write(VersionedEntry(version: clock.next(physical: now), value: nil, expiresAt: nil))
            level = consistency ?? configuration.writeConsistency
        }
        let replicas = replicas(of: key)
        let id = newRequestID()
        var coordination = Coordination(
            client: client, key: key, level: level, kind: kind, replicas: replicas, targets: [],
            required: level.required(of: replicas.count),
            deadline: now.advanced(byNanoseconds: configuration.requestTimeout))
        if case .write = kind, level != .one {
            // Every write at `quorum` or `all` that completed before this one is on a majority of
            // the replicas, so any `N - majority + 1` of them include one that holds it.
            coordination.querying = true
            coordination.queryQuorum = replicas.count - ConsistencyLevel.quorum.required(of: replicas.count) + 1
        }
        for replica in replicas {
            coordination.targets.append(
                Coordination.Target(node: replica, nextAttempt: now.advanced(byNanoseconds: backoff(attempt: 0))))
        }
        coordinations[id] = coordination
        for replica in replicas { ask(replica, for: id) }
    }

    /// Sends the request's message to `node` (again).
    mutating func ask(_ node: NodeID, for id: UInt64) {
        guard let coordination = coordinations[id] else { return }
        switch coordination.kind {
        case .write(let entry):
            if coordination.querying {
                send(.read(request: id, key: coordination.key), to: node)
            } else {
                send(.write(request: id, key: coordination.key, entry: entry, repair: false), to: node)
            }
        case .read:
            if let repairing = coordination.repairing, let entry = repairing {
                send(.write(request: id, key: coordination.key, entry: entry, repair: true), to: node)
            } else {
                send(.read(request: id, key: coordination.key), to: node)
            }
        }
    }

    // MARK: Timers

    mutating func coordinationTimers(now: Instant) {
        for id in coordinations.keys.sorted() {
            guard var coordination = coordinations[id] else { continue }
            if now >= coordination.deadline {
                fail(id)
                continue
            }
            var retry: [NodeID] = []
            var standIns: [NodeID] = []
            for index in coordination.targets.indices where !coordination.targets[index].done {
                guard now >= coordination.targets[index].nextAttempt else { continue }
                coordination.targets[index].attempts += 1
                coordination.targets[index].nextAttempt = now.advanced(
                    byNanoseconds: backoff(attempt: coordination.targets[index].attempts))
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
            if configuration.sloppyQuorum, case .write = coordination.kind, !coordination.querying {
                for silent in standIns {
                    guard let standIn = nextStandIn(for: coordination) else { break }
                    coordination.targets.append(
                        Coordination.Target(
                            node: standIn, standsInFor: silent,
                            nextAttempt: now.advanced(byNanoseconds: backoff(attempt: 1))))
                    retry.append(standIn)
                }
            }
            coordinations[id] = coordination
            for node in retry { ask(node, for: id) }
        }
    }

    func standInAsked(for replica: NodeID, in coordination: Coordination) -> Bool {
        coordination.targets.contains { $0.standsInFor == replica }
    }

    /// The first alive key owner past the key's replicas that is not asked yet.
    func nextStandIn(for coordination: Coordination) -> NodeID? {
        let asked = Set(coordination.targets.map(\.node))
        let extended = ring.preferenceList(for: coordination.key, count: ring.members.count)
        return extended.first { !asked.contains($0) && membership.status(of: $0) == .alive }
    }

    // MARK: Answers

    mutating func writeReplied(_ id: UInt64, from node: NodeID, _ result: ReplicaWriteResult, now: Instant) {
        guard var coordination = coordinations[id],
            let index = coordination.targets.firstIndex(where: { $0.node == node && !$0.done })
        else { return }
        coordination.targets[index].done = true
        if case .read = coordination.kind {
            // A write-back of a read.
            guard let repairing = coordination.repairing, let chosen = repairing else { return }
            switch result {
            case .stored, .stale:
                if !coordination.holders.contains(node) { coordination.holders.append(node) }
            case .refused:
                break
            }
            coordinations[id] = coordination
            if coordination.holders.count >= repairQuorum(coordination) {
                answer(id, .found(chosen, now: now))
            } else if openTargets(coordination) + coordination.holders.count < repairQuorum(coordination) {
                fail(id)
            }
            return
        }
        guard case .write(let entry) = coordination.kind, !coordination.querying else { return }
        switch result {
        case .stored, .stale:
            // A replica that holds a newer version holds the outcome of this write followed by a
            // later one: it counts, as in ABD, where replicas keep the greatest tag and answer.
            if case .stored(let previousWasLive) = result {
                coordination.existed = coordination.existed || previousWasLive
            }
            coordination.holders.append(node)
            coordinations[id] = coordination
            if coordination.holders.count >= coordination.required {
                let outcome: ClientOutcome =
                    entry.value == nil
                    ? .deleted(existed: coordination.existed, version: entry.version)
                    : .stored(version: entry.version, expiresAt: entry.expiresAt)
                answer(id, outcome)
            }
        case .refused:
            coordinations[id] = coordination
            if openTargets(coordination) + coordination.holders.count < coordination.required {
                fail(id)
            }
        }
    }

    mutating func readReplied(_ id: UInt64, from node: NodeID, _ entry: VersionedEntry?, now: Instant) {
        guard var coordination = coordinations[id], coordination.repairing == nil,
            let index = coordination.targets.firstIndex(where: { $0.node == node && !$0.done })
        else { return }
        // A late answer to a write's first phase, once it is writing, is not for this phase.
        if case .write = coordination.kind, !coordination.querying { return }
        coordination.targets[index].done = true
        coordination.replies.append((node, entry))
        coordinations[id] = coordination
        if coordination.querying {
            versionsReplied(id, coordination, now: now)
            return
        }
        guard coordination.replies.count >= coordination.required else { return }
        let chosen: VersionedEntry?
        if configuration.injectedBug == .readFirstReply {
            chosen = coordination.replies[0].entry
        } else {
            chosen = coordination.replies.compactMap(\.entry).max { $0.version < $1.version }
        }
        // Stale answers are repaired in any case; the read waits for the repair when it must.
        let stale = coordination.replies.filter { reply in
            guard let chosen else { return false }
            return reply.entry.map { $0.version < chosen.version } ?? true
        }.map(\.node)
        guard let chosen else {
            answer(id, .notFound)
            return
        }
        let holders = coordination.replies.filter { $0.entry?.version == chosen.version }.map(\.node)
        if coordination.level == .one || holders.count >= repairQuorum(coordination) {
            for node in stale { send(.write(request: 0, key: coordination.key, entry: chosen, repair: true), to: node) }
            answer(id, .found(chosen, now: now))
            return
        }
        // The newest version is on too few replicas for a later read to be sure to see it: write it
        // back to a majority before answering, so that no later read returns an older one.
        coordination.repairing = .some(chosen)
        coordination.holders = holders
        for index in coordination.targets.indices {
            let target = coordination.targets[index].node
            coordination.targets[index].done = holders.contains(target)
            coordination.targets[index].attempts = 1
            coordination.targets[index].nextAttempt = now.advanced(byNanoseconds: backoff(attempt: 1))
        }
        coordinations[id] = coordination
        for target in coordination.targets where !target.done { ask(target.node, for: id) }
    }

    /// A write's first phase has its answers: take a version above all of them and write it.
    mutating func versionsReplied(_ id: UInt64, _ queried: Coordination, now: Instant) {
        guard queried.replies.count >= queried.queryQuorum, case .write(var entry) = queried.kind else { return }
        var coordination = queried
        for reply in coordination.replies {
            if let version = reply.entry?.version { clock.observe(version) }
        }
        entry.version = clock.next(physical: now)
        coordination.kind = .write(entry)
        coordination.querying = false
        coordination.replies = []
        for index in coordination.targets.indices {
            coordination.targets[index].done = false
            coordination.targets[index].attempts = 1
            coordination.targets[index].nextAttempt = now.advanced(byNanoseconds: backoff(attempt: 1))
        }
        coordinations[id] = coordination
        for target in coordination.targets { ask(target.node, for: id) }
    }

    /// Replicas that must hold a read's answer before it is returned: a majority.
    func repairQuorum(_ coordination: Coordination) -> Int {
        ConsistencyLevel.quorum.required(of: coordination.replicas.count)
    }

    func openTargets(_ coordination: Coordination) -> Int {
        coordination.targets.filter { !$0.done }.count
    }

    mutating func answer(_ id: UInt64, _ outcome: ClientOutcome) {
        guard let coordination = coordinations.removeValue(forKey: id) else { return }
        let hinted = coordination.targets.contains { target in
            target.standsInFor != nil && coordination.holders.contains(target.node)
        }
        effects.append(
            .reply(
                ClientReply(
                    request: coordination.client, outcome: outcome, replicas: coordination.replicas, hinted: hinted)))
    }

    /// Answers that the request's level was not met, and how many replicas did answer.
    mutating func fail(_ id: UInt64) {
        guard let coordination = coordinations[id] else { return }
        let answered: Int
        switch coordination.kind {
        case .write: answered = coordination.querying ? coordination.replies.count : coordination.holders.count
        case .read: answered = coordination.repairing == nil ? coordination.replies.count : coordination.holders.count
        }
        answer(id, .unavailable(level: coordination.level, answered: answered, required: coordination.required))
    }
}

extension ClusterNode.ClientOutcome {
    /// What a read of `entry` answers at `now`: the value, unless it is a tombstone or has expired.
    static func found(_ entry: VersionedEntry, now: Instant) -> Self {
        guard entry.isLive(at: now), let value = entry.value else { return .notFound }
        return .found(value: value, version: entry.version, expiresAt: entry.expiresAt)
    }
}
