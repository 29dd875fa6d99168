/// A log record appended and not durable yet: what a repair of a failed log writes again.
struct UnsyncedRecord: Sendable {
    var key: [UInt8]
    var position: UInt64
    var sequence: UInt64
    /// A drop record's version (`nil` for an entry's record): a repair that cuts it off writes it
    /// again, or the entry would come back at the next restart.
    var dropped: Version? = nil
}

/// An answer held back until the log record it depends on is durable.
enum AwaitingDurability: Sendable {
    /// A replica's answer to a peer.
    case message(sequence: UInt64, to: String, body: ReplicationBody)
    /// An answer to a client whose key has no replica but this node.
    case client(sequence: UInt64, reply: ClusterNode.ClientReply)

    var sequence: UInt64 {
        switch self {
        case .message(let sequence, _, _), .client(let sequence, _): sequence
        }
    }
}

extension ClusterNode {
    // MARK: Messages

    mutating func received(_ message: ReplicationMessage, now: Instant) {
        let sender = message.sender
        switch message.body {
        case .write(let request, let key, let entry, let repair):
            guard admits(entry.version, now: now) else {
                if let request {
                    send(
                        .writeReply(request: request, result: .refused(reason: clockRefusal)),
                        toAddress: message.senderAddress)
                }
                return
            }
            replicaWrite(
                request: request, key: KeyReference(key), entry, repair: repair, replyTo: message.senderAddress,
                admission: .evictIfNeeded, now: now)
        case .writeReply(let request, var result):
            if case .stale(let current) = result, !admits(current, now: now) {
                result = .refused(reason: clockRefusal)
            }
            if handoffRequests[request] != nil {
                handoffReplied(request, from: sender, result)
            } else if collectionRequests[request] != nil {
                collectionReplied(request, from: sender, result)
            } else {
                writeReplied(request, from: sender, result, now: now)
            }
        case .read(let request, let key):
            let reference = KeyReference(key)
            // A replica's read is an access: it keeps the key recent in this replica's LRU.
            let entry = store.read(reference, now: now)?.versionedEntry
            if isUnsafeToRead(reference) {
                // No answer: the coordinator asks again, or asks another replica.
                counters.readsWithheld &+= 1
                return
            }
            answerWhenDurable(
                pendingSequence(of: reference), to: message.senderAddress, .readReply(request: request, entry: entry))
        case .readReply(let request, let entry):
            // An answer holding a version from too far ahead is no answer: the read waits for others.
            if let entry, !admits(entry.version, now: now) { return }
            readReplied(request, from: sender, entry, now: now)
        case .digest(let buckets):
            digestReceived(buckets, from: sender)
        case .summary(let buckets, let versions):
            // A key whose version is too far ahead is not pulled.
            let admitted = versions.filter { admits($0.version, now: now) }
            if admitted.count < versions.count { counters.versionsRefused &+= UInt64(versions.count - admitted.count) }
            summaryReceived(buckets: buckets, versions: admitted, from: sender)
        case .pull(let keys):
            var items: [ReplicaItem] = []
            for key in keys {
                if let entry = store.stored(KeyReference(key)) {
                    items.append(ReplicaItem(key: key, entry: entry.versionedEntry))
                }
            }
            push(items, to: sender)
        case .push(let items):
            for item in items where admits(item.entry.version, now: now) {
                replicaWrite(
                    request: nil, key: KeyReference(item.key), item.entry, repair: true, replyTo: nil,
                    admission: configuration.injectedBug == .pushIntoFullStore ? .evictIfNeeded : .onlyIfRoom, now: now)
            }
        case .forget(let key, let version):
            let reference = KeyReference(key)
            if let entry = store.stored(reference), entry.version == version, !entry.isLive(at: now) {
                drop(reference, ifVersion: version)
            }
        }
    }

    /// Whether `version` is at most the maximum clock offset ahead of `now`; the clock takes note
    /// of it when it is (later versions of this node are greater). One that is not is counted.
    mutating func admits(_ version: Version, now: Instant) -> Bool {
        let bound =
            configuration.injectedBug == .adoptClocksPastTheBound
            ? Duration.seconds(1 << 40) : configuration.maximumClockOffset
        guard clock.observe(version, now: now, maximumOffset: bound) else {
            counters.versionsRefused &+= 1
            return false
        }
        return true
    }

    /// What a replica answers a write whose version is too far ahead of its clock.
    var clockRefusal: String {
        "the write's version is ahead of this replica's clock by more than \(configuration.maximumClockOffset)"
    }

    /// Takes a write as a replica: logs and applies it when newer, and answers once the log record
    /// holding the key's current entry is durable.
    mutating func replicaWrite(
        request: UInt64?, key: KeyReference, _ entry: VersionedEntry, repair: Bool, replyTo: String?,
        admission: ReplicaStore.Admission, now: Instant
    ) {
        // Whom to answer, if anyone: a write with a request number from a peer that said where it is.
        var answer: (request: UInt64, to: String)?
        if let request, let replyTo { answer = (request, replyTo) }
        // A tombstone past its grace period is being collected: a replica that holds nothing for the
        // key has nothing for it to delete, and storing it would undo a collection that raced with
        // this repair (an anti-entropy push sent just before the `forget`). Holding nothing older is
        // what the collector needs to hear, so the answer is still "stored".
        if repair, store.stored(key) == nil, !entry.isLive(at: now),
            entry.deadSince.advanced(by: configuration.tombstoneGrace) <= now
        {
            if let answer {
                send(
                    .writeReply(request: answer.request, result: .stored(previousWasLive: false)), toAddress: answer.to)
            }
            return
        }
        // A leaving node takes no repair of a key it no longer owns. Its own handoff sends the key
        // to a peer that may still see the leaver as the owner and hand the key straight back;
        // had the leaver answered "stored", each would drop its copy on the other's answer and
        // the key would be gone (the simulator, seed 880202 at 5 nodes, rf 1). Refused, the peer
        // keeps its copy until it learns the node left and owns the key itself.
        if repair, membership.isLeaving, !replicas(of: key).contains(me) {
            if let answer {
                let reason = "this node is leaving and no longer owns the key"
                send(.writeReply(request: answer.request, result: .refused(reason: reason)), toAddress: answer.to)
            }
            return
        }
        if let overload = durabilityOverload {
            if let answer {
                let reason = "overloaded: \(overload)"
                send(.writeReply(request: answer.request, result: .refused(reason: reason)), toAddress: answer.to)
            }
            return
        }
        var entry = entry
        if repair, configuration.injectedBug == .extendTimeToLiveOnRepair, let expiresAt = entry.expiresAt {
            entry.expiresAt = expiresAt.advanced(by: .seconds(60))
        }
        let unconditionally = repair && configuration.injectedBug == .repairWithoutVersionCheck
        var result = store.check(key, entry, now: now, admission: admission)
        if unconditionally, store.stored(key)?.versionedEntry != entry { result = .applied(previousWasLive: false) }
        switch result {
        case .applied(let previousWasLive):
            let sequence: UInt64?
            switch logEntry(key, entry) {
            case .refused(let reason):
                if let answer {
                    send(.writeReply(request: answer.request, result: .refused(reason: reason)), toAddress: answer.to)
                }
                return
            case .logged(let appended):
                sequence = appended
            }
            store.apply(key, entry, now: now, admission: admission, unconditionally: unconditionally)
            // The record logged is the entry held: a write is answered "stored" only for what a
            // replay of the log brings back.
            assert(
                sequence == nil || log?.lastSequence == sequence, "a replica write answered for another record")
            if let answer {
                answerWhenDurable(
                    sequence, to: answer.to,
                    .writeReply(request: answer.request, result: .stored(previousWasLive: previousWasLive)))
            }
        case .duplicate:
            // The version is held already; "stored" vouches that it is durable.
            guard let answer else { break }
            answerForHeldEntry(key, to: answer, .stored(previousWasLive: false))
        case .stale(let current):
            // "Stale" counts towards the write's level (a newer version is held): it vouches, as
            // "stored" does, for a durable entry. Answered at once, it vouched for a newer entry
            // still waiting for its sync, which a power loss takes back with the older write it
            // stood for (the simulator's level checker, seed 7: a write at `one` acknowledged on
            // such an answer alone).
            guard let answer else { break }
            answerForHeldEntry(key, to: answer, .stale(current: current))
        case .notAdmitted:
            if let answer {
                let reason = "the replica cannot take this write"
                send(.writeReply(request: answer.request, result: .refused(reason: reason)), toAddress: answer.to)
            }
        }
    }

    /// Answers a write with `result`, which vouches for the entry the store already holds for
    /// `key`: once that entry's record is durable. While the log has failed, a held entry whose
    /// record never became durable cannot be vouched for, and the write is refused (the simulator's
    /// failing disks found a repair acknowledged that way, lost at the next crash).
    mutating func answerForHeldEntry(
        _ key: KeyReference, to answer: (request: UInt64, to: String), _ result: ReplicaWriteResult
    ) {
        if let failure = log?.failure, !isHeldEntryDurable(key) {
            send(.writeReply(request: answer.request, result: .refused(reason: failure)), toAddress: answer.to)
            return
        }
        answerWhenDurable(
            pendingSequence(of: key), to: answer.to, .writeReply(request: answer.request, result: result))
    }

    // MARK: Durability

    /// What logging an entry came to.
    enum Logged {
        /// Appended as record `sequence` and remembered until durable (`nil`: the node keeps no log).
        case logged(sequence: UInt64?)
        /// The log refuses writes (its disk failed).
        case refused(reason: String)
    }

    /// Logs the key's new entry before the store takes it: appends its record, asks the driver to
    /// write it, and remembers it until it is durable.
    mutating func logEntry(_ key: KeyReference, _ entry: VersionedEntry) -> Logged {
        switch log?.append(.versioned(key: key.bytes, entry: entry)) {
        case .refused(let reason):
            return .refused(reason: reason)
        case .append(let sequence, let bytes):
            assert(!bytes.isEmpty && log?.mayAcknowledge(sequence) == false, "a record logged as durable at once")
            effects.append(.append(sequence: sequence, bytes: bytes))
            noteUnsynced(key, sequence: sequence)
            return .logged(sequence: sequence)
        case nil:
            return .logged(sequence: nil)
        }
    }

    /// Why a write cannot be taken now for lack of room to wait for the log, if so: its answer
    /// could not be held back, or its record not remembered until durable.
    var durabilityOverload: String? {
        if awaitingDurability.isFull { return "\(awaitingDurability.count) answers wait for the log" }
        if unsyncedOrder.isFull { return "\(unsyncedOrder.count) log records wait to be durable" }
        return nil
    }

    /// The key's newest entry was appended as record `sequence`, not yet durable.
    ///
    /// Under `always` a record waits for a sync (milliseconds), so the node tracks which keys wait,
    /// and a read of any other key is answered at once. Under `interval` and `none` a record is
    /// durable once written, which the driver does at the end of the same event-loop turn: a read
    /// simply waits for every record appended so far, which costs nothing, and no key is tracked.
    ///
    /// Under every policy the record is remembered until it is durable, so that a repair of a failed
    /// log can write again the entries whose records it lost (they stay in the store).
    mutating func noteUnsynced(_ key: KeyReference, sequence: UInt64) {
        precondition(unsyncedOrder.last.map { $0.sequence < sequence } ?? true, "records noted out of order")
        precondition(log?.lastSequence == sequence, "a record noted that is not the log's last")
        unsyncedOrder.append(UnsyncedRecord(key: key.bytes, position: key.position, sequence: sequence))
        guard log?.policy == .always else { return }
        unsyncedWrites[key.position] = sequence
    }

    /// Whether a read of the key must not be answered now: the log has failed and the key's entry in
    /// the store never became durable (its write was refused, or a repair has yet to write it
    /// again). Answering would show a value, or an absence, that a crash can take back: a read saw
    /// it, a later one would not (the simulator's linearizability checker found that, seed 400473
    /// with one replica). Reads of durable entries are served as before.
    func isUnsafeToRead(_ key: KeyReference) -> Bool {
        guard let log, log.failure != nil else { return false }
        return !isHeldEntryDurable(key)
    }

    /// The log record the key's entry waits for, if it is not durable yet.
    func pendingSequence(of key: KeyReference) -> UInt64? {
        // While the disk fails, reads are answered with what the store holds (the records they
        // would wait for may never be durable; their writes were refused).
        guard let log, log.failure == nil else { return nil }
        guard log.policy == .always else {
            return log.mayAcknowledge(log.lastSequence) ? nil : log.lastSequence
        }
        guard let sequence = unsyncedWrites[key.position], !log.mayAcknowledge(sequence) else { return nil }
        assert(sequence <= log.lastSequence, "a key waits for a record never appended")
        return sequence
    }

    /// Whether the record of the key's entry in the store is durable under the policy, failed log
    /// or not (`pendingSequence` answers reads, which do not wait while the log has failed).
    func isHeldEntryDurable(_ key: KeyReference) -> Bool {
        guard let log else { return true }
        guard log.policy == .always else { return log.mayAcknowledge(log.lastSequence) }
        guard let sequence = unsyncedWrites[key.position] else { return true }
        return log.mayAcknowledge(sequence)
    }

    func isDurable(_ sequence: UInt64?) -> Bool {
        guard let sequence, let log else { return true }
        return log.mayAcknowledge(sequence)
    }

    /// Sends `body` once the log record `sequence` is durable under the sync policy: a replica never
    /// reports an entry it could still lose.
    ///
    /// With no room left to hold it back, a write's answer is a refusal and a read's is withheld
    /// (the coordinator asks again or another replica): the queue is bounded on every path.
    mutating func answerWhenDurable(_ sequence: UInt64?, to address: String, _ body: ReplicationBody) {
        if isDurable(sequence) || configuration.injectedBug == .acknowledgeBeforeSync {
            send(body, toAddress: address)
        } else if awaitingDurability.isFull {
            counters.answersShed &+= 1
            if case .writeReply(let request, _) = body {
                let reason = "overloaded: \(awaitingDurability.count) answers wait for the log"
                send(.writeReply(request: request, result: .refused(reason: reason)), toAddress: address)
            }
        } else {
            assert(sequence! <= log!.lastSequence, "an answer waits for a record never appended")
            awaitingDurability.append(.message(sequence: sequence!, to: address, body: body))
        }
    }

    /// Answers a client once the log record `sequence` is durable (or at once that the node is
    /// overloaded, with no room to hold the answer back).
    mutating func replyWhenDurable(_ sequence: UInt64?, _ reply: ClientReply) {
        if isDurable(sequence) {
            effects.append(.reply(reply))
        } else if awaitingDurability.isFull {
            counters.answersShed &+= 1
            var refusal = reply
            refusal.outcome = .overloaded(reason: "\(awaitingDurability.count) answers wait for the log")
            effects.append(.reply(refusal))
        } else {
            assert(sequence! <= log!.lastSequence, "an answer waits for a record never appended")
            awaitingDurability.append(.client(sequence: sequence!, reply: reply))
        }
    }

    mutating func releaseDurable(now: Instant) {
        guard let log else { return }
        while let oldest = unsyncedOrder.first, log.mayAcknowledge(oldest.sequence) {
            _ = unsyncedOrder.popFirst()
            if unsyncedWrites[oldest.position] == oldest.sequence { unsyncedWrites[oldest.position] = nil }
        }
        // Answers leave in arrival order. Durability comes in log order, and an answer waits for a
        // record no later than the last one appended when it arrived, so releasing the durable prefix
        // never holds an answer for longer than the records before it take.
        while let first = awaitingDurability.first, log.mayAcknowledge(first.sequence) {
            switch awaitingDurability.popFirst()! {
            case .message(_, let to, let body): send(body, toAddress: to)
            case .client(_, var reply):
                // A read answered now, not when it came: a value that expired while it waited is
                // gone (the simulator saw one served after its expiry, seed 401209).
                if case .found(let entry) = reply.outcome, !entry.isLive(at: now) {
                    counters.hits &-= 1
                    counters.misses &+= 1
                    reply.outcome = .notFound
                }
                effects.append(.reply(reply))
            }
        }
        assert(
            awaitingDurability.first.map { $0.sequence <= log.lastSequence } ?? true,
            "an answer waits for a record never appended")
    }

    /// The log's disk failed: writes waiting for it are refused (their records may never be durable);
    /// reads waiting for it are answered with what the store holds.
    mutating func logFailed(reason: String, now: Instant) {
        guard log != nil else { return }
        if log?.failure == nil { nextLogRepair = now.advanced(by: configuration.logRepairInterval) }
        log?.diskFailed(reason)
        while let item = awaitingDurability.popFirst() {
            switch item {
            case .message(_, let to, .writeReply(let request, _)):
                send(.writeReply(request: request, result: .refused(reason: reason)), toAddress: to)
            case .message(_, let to, let body):
                // A read that waited for a record that may now never be durable: answering would
                // show what a crash can take back; the coordinator asks again or asks another.
                if case .readReply = body {
                    counters.readsWithheld &+= 1
                } else {
                    send(body, toAddress: to)
                }
            case .client(_, var reply):
                switch reply.outcome {
                case .stored, .deleted: reply.outcome = .refused(reason: reason)
                case .found, .notFound: reply.outcome = .unavailable(level: .one, answered: 0, required: 1)
                default: break
                }
                effects.append(.reply(reply))
            }
        }
        assert(log?.failure != nil, "the log failed and still takes writes")
    }

    /// The log takes writes again, ending with record `kept`; records after it are gone (their writes
    /// were answered with an error, never acknowledged).
    mutating func logRepaired(keptSequence kept: UInt64, now: Instant) {
        guard log?.failure != nil else { return }
        log?.diskRecovered(keptSequence: kept)
        nextLogRepair = nil
        membersToRewrite = true
        var order = BoundedQueue<UnsyncedRecord>(capacity: unsyncedOrder.capacity)
        var lost: [[UInt8]] = []
        var lostDrops: [(key: [UInt8], version: Version)] = []
        while let item = unsyncedOrder.popFirst() {
            if item.sequence <= kept {
                order.append(item)
            } else if let version = item.dropped {
                lostDrops.append((item.key, version))
            } else {
                if unsyncedWrites[item.position] == item.sequence { unsyncedWrites[item.position] = nil }
                lost.append(item.key)
            }
        }
        unsyncedOrder = order
        assert(log?.lastSequence == kept && log?.failure == nil, "the repaired log does not end at the kept record")
        // The store still holds the entries of the records the repair cut off (their writes were
        // refused, but a replica that holds a version says so to a repeat of it, and anti-entropy
        // spreads it): each key's current entry is written again, and waits for durability as any.
        // Without this a repeat of such a write was acknowledged and the entry lost at the next crash.
        var rewritten = Set<[UInt8]>()
        for key in lost where rewritten.insert(key).inserted {
            let reference = KeyReference(key)
            guard let entry = store.stored(reference), case .logged(.some) = logEntry(reference, entry.versionedEntry)
            else { continue }
            counters.entriesRewrittenAfterRepair &+= 1
        }
        // Drops the repair cut off are written again, unless the key holds an entry again (whose
        // record, just written or durable, outranks the dropped version).
        for (key, version) in lostDrops where store.stored(KeyReference(key)) == nil {
            _ = logDrop(KeyReference(key), version)
        }
        releaseDurable(now: now)
    }

    // MARK: Handoff

    /// Sends the keys this node holds but does not own to their owners, a batch per pass; a key is
    /// dropped once every owner has confirmed it holds the version durably.
    mutating func handOff(now: Instant) {
        let limit = configuration.maximumItemsPerMessage
        // Handoffs in flight first (in key order, never the dictionary's).
        for key in handoffs.keys.sorted(by: Self.keyOrder) {
            guard let entry = store.stored(key), var handoff = handoffs[key], entry.version == handoff.version else {
                dropHandoff(key)
                continue
            }
            let owners = replicas(of: key)
            if owners.contains(me) {
                dropHandoff(key)
                continue
            }
            handoff.waiting = handoff.waiting.filter { owners.contains($0) }
            if handoff.waiting.isEmpty { handoff.waiting = owners }
            handoffs[key] = handoff
            for owner in handoff.waiting {
                send(
                    .write(request: handoff.request, key: key.bytes, entry: entry.versionedEntry, repair: true),
                    to: owner)
            }
        }
        while handoffs.count < limit, let key = store.nextHandoffCandidate() {
            guard handoffs[key] == nil, let entry = store.stored(key) else { continue }
            let owners = replicas(of: key)
            guard !owners.contains(me) else { continue }
            let handoff = Handoff(version: entry.version, waiting: owners, request: newRequestID())
            handoffs[key] = handoff
            handoffRequests[handoff.request] = key
            for owner in owners {
                send(
                    .write(request: handoff.request, key: key.bytes, entry: entry.versionedEntry, repair: true),
                    to: owner)
            }
        }
    }

    mutating func dropHandoff(_ key: KeyReference) {
        guard let handoff = handoffs.removeValue(forKey: key) else { return }
        handoffRequests[handoff.request] = nil
    }

    mutating func handoffReplied(_ request: UInt64, from node: NodeID, _ result: ReplicaWriteResult) {
        guard let key = handoffRequests[request], var handoff = handoffs[key] else { return }
        if case .refused = result { return }
        handoff.waiting.removeAll { $0 == node }
        if handoff.waiting.isEmpty {
            counters.handoffsDelivered &+= 1
            dropHandoff(key)
            if !replicas(of: key).contains(me) { drop(key, ifVersion: handoff.version) }
        } else {
            handoffs[key] = handoff
        }
    }

    /// Handoffs in flight, and keys found held but not owned that wait for one.
    public var handoffBacklog: Int { handoffs.count + store.handoffBacklog }

    static func keyOrder(_ lhs: KeyReference, _ rhs: KeyReference) -> Bool {
        lhs.position != rhs.position ? lhs.position < rhs.position : lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    // MARK: Tombstone collection

    /// The key's first replica collects its tombstones (and expired entries) older than the grace
    /// period: it makes sure every replica holds the tombstone (or nothing older), then tells them all
    /// to forget it. Any other replica that still holds one a quarter of the grace period later
    /// collects it too: a replica can be left holding a tombstone the others already forgot (a repair
    /// that crossed the `forget` on the way), and nobody else would ever collect it.
    ///
    /// A node that is joining (restarted with seeds, no member reached yet) collects nothing: its ring
    /// holds only itself, so it would take itself for the only replica of every key it holds, and its
    /// view has no member whose clock could disagree (seed 3179 with 6 nodes: a restarted node with a
    /// fast clock collected a tombstone whose owner still held the older value, which came back).
    mutating func collectTombstones(now: Instant) {
        guard !isJoining else { return }
        let grace = configuration.injectedBug == .collectTombstonesEarly ? Duration.zero : configuration.tombstoneGrace
        // Collections in flight: ask again the replicas that have not confirmed.
        for key in collections.keys.sorted(by: Self.keyOrder) {
            guard var collection = collections[key], let entry = store.stored(key), entry.version == collection.version
            else {
                dropCollection(key)
                continue
            }
            let owners = replicas(of: key)
            collection.waiting = collection.waiting.filter { owners.contains($0) }
            collections[key] = collection
            if collection.waiting.isEmpty {
                finishCollection(of: key)
                continue
            }
            for owner in collection.waiting {
                send(
                    .write(request: collection.request, key: key.bytes, entry: entry.versionedEntry, repair: true),
                    to: owner)
            }
        }
        // Whether every other member seen alive agrees with this node's clock: asked once a pass,
        // when the first tombstone is due.
        var membersAgree: Bool?
        while collections.count < configuration.maximumItemsPerMessage,
            let key = store.nextDueTombstone(now: now, dueAfter: grace)
        {
            guard collections[key] == nil, let stored = store.stored(key), !stored.isLive(at: now) else { continue }
            let entry = stored.versionedEntry
            let dueAt = entry.deadSince.advanced(by: grace)
            if dueAt > now {
                // Replaced by a later tombstone since it was queued: look again when that one is due.
                store.requeueTombstone(key, at: dueAt, grace: grace)
                continue
            }
            let owners = replicas(of: key)
            // A tombstone this node holds for others goes to them through the handoff pass.
            guard owners.contains(me) else { continue }
            if owners.first != me {
                let backupAt = entry.deadSince.advanced(by: grace + grace / 4)
                if backupAt > now {
                    store.requeueTombstone(key, at: backupAt, grace: grace)
                    continue
                }
            }
            if configuration.injectedBug == .collectTombstonesEarly {
                forget(key, entry.version, owners: owners)
                continue
            }
            // The grace period is read off this node's clock: one running ahead would collect early,
            // before a replica that is away (not yet back in this node's view) returns with an older
            // value, or while a coordinator whose clock is behind can still read nothing and write a
            // version older than the delete (with one replica there is no other replica to ask, and
            // every member coordinates). Collect only while the clock is measured within the bound
            // of every other replica and every other member seen alive.
            if membersAgree == nil {
                membersAgree = membership.clockAgreesWithEveryAliveMember(within: configuration.maximumClockOffset)
            }
            guard membersAgree == true, clockAgrees(with: owners) else {
                store.requeueTombstone(key, at: now.advanced(by: grace / 4), grace: grace)
                continue
            }
            let collection = TombstoneCollection(
                version: entry.version, waiting: owners.filter { $0 != me }, request: newRequestID())
            collections[key] = collection
            collectionRequests[collection.request] = key
            if collection.waiting.isEmpty {
                finishCollection(of: key)
                continue
            }
            for owner in collection.waiting {
                send(.write(request: collection.request, key: key.bytes, entry: entry, repair: true), to: owner)
            }
        }
    }

    /// Whether this node's clock was measured, by the last message of each other member in
    /// `owners`, to be ahead of theirs by no more than the maximum offset.
    func clockAgrees(with owners: [NodeID]) -> Bool {
        let bound = configuration.maximumClockOffset.nanoseconds
        return owners.allSatisfy { owner in
            owner == me || membership.clockLead(over: owner).map { $0 <= bound } ?? false
        }
    }

    mutating func dropCollection(_ key: KeyReference) {
        guard let collection = collections.removeValue(forKey: key) else { return }
        collectionRequests[collection.request] = nil
    }

    mutating func collectionReplied(_ request: UInt64, from node: NodeID, _ result: ReplicaWriteResult) {
        guard let key = collectionRequests[request], var collection = collections[key] else { return }
        switch result {
        case .stored:
            collection.waiting.removeAll { $0 == node }
            collections[key] = collection
            if collection.waiting.isEmpty { finishCollection(of: key) }
        case .stale, .refused:
            // A newer write exists (it will reach this node), or the replica cannot take writes: the
            // next pass asks again.
            break
        }
    }

    mutating func finishCollection(of key: KeyReference) {
        guard let collection = collections[key] else { return }
        dropCollection(key)
        forget(key, collection.version, owners: replicas(of: key))
    }

    mutating func forget(_ key: KeyReference, _ version: Version, owners: [NodeID]) {
        for owner in owners where owner != me { send(.forget(key: key.bytes, version: version), to: owner) }
        drop(key, ifVersion: version)
        effects.append(.collected(key: key.bytes, version: version))
    }

    /// Offers the entries whose drop the log refused to the handoff and collection passes again
    /// (each checks it again: the handoff pass skips what this node owns, collection what is
    /// live), once the log takes records and has room to track them.
    mutating func offerRefusedDropsAgain() {
        guard !refusedDrops.isEmpty, log?.failure == nil, !unsyncedOrder.isFull else { return }
        let grace = configuration.tombstoneGrace
        for key in refusedDrops.sorted(by: Self.keyOrder) {
            guard let held = store.stored(key) else { continue }
            store.requeueTombstone(key, at: held.versionedEntry.deadSince.advanced(by: grace), grace: grace)
            store.requeueHandoff(key)
        }
        refusedDrops = []
    }

    /// Lets go of `key`'s entry if it is still at `version`, and logs that it did: a restart must not
    /// bring back from the log a value handed off or a tombstone collected (the node would hand the
    /// old value off again, perhaps after its deletion was collected everywhere: the simulator found
    /// that, seed 300254, a hint dropped while its disk was full came back after a power loss and
    /// was handed off once the owners had collected the key's tombstone). So the entry goes only
    /// once its drop is logged: while the log refuses writes, or too many records wait to be
    /// durable, it stays and is handed off or collected again later. The record waits for no sync
    /// (nothing is answered on it; under `always` the step's sync covers it), and a repair of the
    /// log that cuts it off writes it again (`logRepaired`).
    mutating func drop(_ key: KeyReference, ifVersion version: Version) {
        guard let held = store.stored(key), held.version == version else { return }
        guard log == nil || logDrop(key, version) else {
            // Kept, and offered again once the log can take the drop: not at once, or a
            // collection with no other replica to ask would loop on it within the step
            // (found by a 5-node sweep with one replica: the step's effects grew without end).
            refusedDrops.insert(key)
            return
        }
        let removed = store.remove(key, ifVersion: version)
        assert(removed, "an entry at the version just checked was not removed")
    }

    /// Appends the drop record of `key` at `version` and tracks it until durable (a repair that
    /// cuts it off writes it again); `false` when the log refuses writes or cannot track one more.
    mutating func logDrop(_ key: KeyReference, _ version: Version) -> Bool {
        guard log?.failure == nil, !unsyncedOrder.isFull,
            case .append(let sequence, let bytes) = log?.append(.dropped(key: key.bytes, version: version))
        else { return false }
        effects.append(.append(sequence: sequence, bytes: bytes))
        unsyncedOrder.append(
            UnsyncedRecord(key: key.bytes, position: key.position, sequence: sequence, dropped: version))
        return true
    }

    // MARK: Anti-entropy

    /// Sends the digests of the keys this node and one other replicate together to that node.
    mutating func startAntiEntropy() {
        guard configuration.injectedBug != .skipAntiEntropy else { return }
        // Dead members keep their share of the ring, but there is no one to talk to.
        let peers = ring.members.filter { $0 != me && membership.status(of: $0) == .alive }
        guard !peers.isEmpty else { return }
        let peer = peers[random.below(peers.count)]
        guard let digests = store.digests(sharedWith: peer) else { return }
        send(.digest(buckets: digests), to: peer)
        counters.antiEntropyRounds &+= 1
    }

    /// Whether `key` is replicated by both this node and `peer`.
    func shared(_ key: KeyReference, with peer: NodeID) -> Bool {
        let owners = replicas(of: key)
        return owners.contains(me) && owners.contains(peer)
    }

    mutating func digestReceived(_ buckets: [DigestBucket], from peer: NodeID) {
        guard let mine = store.digests(sharedWith: peer) else { return }
        var differing = Set<UInt16>()
        let theirs = Dictionary(buckets.map { ($0.index, $0.digest) }, uniquingKeysWith: { first, _ in first })
        for bucket in buckets where store.digest(sharedWith: peer, bucket: bucket.index) != bucket.digest {
            differing.insert(bucket.index)
        }
        for bucket in mine where theirs[bucket.index] == nil { differing.insert(bucket.index) }
        guard !differing.isEmpty else { return }
        // A summary carries the versions of whole buckets, as many as fit one batch (one at least).
        var chosen: [UInt16] = []
        var versions: [KeyVersion] = []
        var bytes = 0
        for bucket in differing.sorted().prefix(configuration.maximumItemsPerMessage) {
            let entries = store.entries(inDigestBuckets: [bucket], sharedWith: peer)
            let size = entries.reduce(0) { $0 + $1.0.bytes.count + 64 }
            if !chosen.isEmpty, bytes + size > PeerProtocol.maximumBatchBytes { break }
            chosen.append(bucket)
            versions += entries.map { KeyVersion(key: $0.0.bytes, version: $0.1.version) }
            bytes += size
        }
        send(.summary(buckets: chosen, versions: versions), to: peer)
    }

    mutating func summaryReceived(buckets: [UInt16], versions: [KeyVersion], from peer: NodeID) {
        var theirs: [KeyReference: Version] = [:]
        for item in versions { theirs[KeyReference(item.key)] = item.version }
        var pushes: [ReplicaItem] = []
        for (key, entry) in store.entries(inDigestBuckets: buckets, sharedWith: peer) {
            if let version = theirs[key], version >= entry.version { continue }
            pushes.append(ReplicaItem(key: key.bytes, entry: entry.versionedEntry))
        }
        var pulls: [[UInt8]] = []
        for item in versions {
            let key = KeyReference(item.key)
            guard shared(key, with: peer) else { continue }
            if let mine = store.stored(key), mine.version >= item.version { continue }
            pulls.append(item.key)
        }
        push(pushes, to: peer)
        counters.antiEntropyKeysPushed &+= UInt64(pushes.count)
        for start in stride(from: 0, to: pulls.count, by: configuration.maximumItemsPerMessage) {
            let end = min(pulls.count, start + configuration.maximumItemsPerMessage)
            send(.pull(keys: Array(pulls[start..<end])), to: peer)
        }
    }

    /// Sends `items` in batches of at most `maximumItemsPerMessage` items and about
    /// `PeerProtocol.maximumBatchBytes` of keys and values (a batch holds one item at least), so that
    /// every frame stays within the protocol's limit.
    mutating func push(_ items: [ReplicaItem], to peer: NodeID) {
        var batch: [ReplicaItem] = []
        var bytes = 0
        for item in items {
            let size = item.key.count + (item.entry.value?.count ?? 0) + 64
            if !batch.isEmpty,
                batch.count == configuration.maximumItemsPerMessage || bytes + size > PeerProtocol.maximumBatchBytes
            {
                send(.push(items: batch), to: peer)
                batch = []
                bytes = 0
            }
            batch.append(item)
            bytes += size
        }
        if !batch.isEmpty { send(.push(items: batch), to: peer) }
    }
}

/// A tombstone this node is collecting: the replicas that have not yet confirmed they hold it.
struct TombstoneCollection: Sendable {
    var version: Version
    var waiting: [NodeID]
    var request: UInt64
}

/// A key this node holds but does not own, on its way to its owners.
struct Handoff: Sendable {
    var version: Version
    /// Owners that have not yet confirmed they hold the version (or a newer one).
    var waiting: [NodeID]
    var request: UInt64
}
