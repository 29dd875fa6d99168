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

extension ClusterNode {
    // MARK: Messages

    mutating func received(_ message: ReplicationMessage, now: Instant) {
        let sender = message.sender
        switch message.body {
        case .write(let request, let key, let entry, let repair):
            clock.observe(entry.version)
            replicaWrite(request: request, key: key, entry, repair: repair, replyTo: message.senderAddress, now: now)
        case .writeReply(let request, let result):
            if case .stale(let current) = result { clock.observe(current) }
            if handoffRequests[request] != nil {
                handoffReplied(request, from: sender, result)
            } else if collectionRequests[request] != nil {
                collectionReplied(request, from: sender, result)
            } else {
                writeReplied(request, from: sender, result, now: now)
            }
        case .read(let request, let key):
            let cacheKey = CacheKey(bytes: key)
            let entry = store.entry(for: cacheKey)
            answerWhenDurable(
                store.sequence(of: cacheKey), to: message.senderAddress, .readReply(request: request, entry: entry))
        case .readReply(let request, let entry):
            if let entry { clock.observe(entry.version) }
            readReplied(request, from: sender, entry, now: now)
        case .digest(let buckets):
            digestReceived(buckets, from: sender)
        case .summary(let buckets, let versions):
            summaryReceived(buckets: buckets, versions: versions, from: sender)
        case .pull(let keys):
            var items: [ReplicaItem] = []
            for key in keys {
                if let entry = store.entry(for: CacheKey(bytes: key)) {
                    items.append(ReplicaItem(key: key, entry: entry))
                }
            }
            push(items, to: sender)
        case .push(let items):
            for item in items {
                clock.observe(item.entry.version)
                replicaWrite(request: 0, key: item.key, item.entry, repair: true, replyTo: nil, now: now)
            }
        case .forget(let key, let version):
            let cacheKey = CacheKey(bytes: key)
            if let entry = store.entry(for: cacheKey), entry.version == version, !entry.isLive(at: now) {
                store.remove(cacheKey, ifVersion: version)
            }
        }
    }

    /// Takes a write as a replica: logs and applies it when newer, and answers once the log record
    /// holding the key's current entry is durable.
    mutating func replicaWrite(
        request: UInt64, key: [UInt8], _ entry: VersionedEntry, repair: Bool, replyTo: String?, now: Instant
    ) {
        let cacheKey = CacheKey(bytes: key)
        // A tombstone past its grace period is being collected: a replica that holds nothing for the
        // key has nothing for it to delete, and storing it would undo a collection that raced with
        // this repair (an anti-entropy push sent just before the `forget`). Holding nothing older is
        // what the collector needs to hear, so the answer is still "stored".
        if repair, store.entry(for: cacheKey) == nil, !entry.isLive(at: now),
            entry.deadSince.advanced(byNanoseconds: configuration.tombstoneGrace) <= now
        {
            if let replyTo, request != 0 {
                send(.writeReply(request: request, result: .stored(previousWasLive: false)), toAddress: replyTo)
            }
            return
        }
        let unconditionally = repair && configuration.injectedBug == .repairWithoutVersionCheck
        var result = store.check(cacheKey, entry)
        if unconditionally, store.entry(for: cacheKey) != entry { result = .applied(previousWasLive: false) }
        switch result {
        case .applied(let previousWasLive):
            var sequence: UInt64 = 0
            switch log?.append(.versioned(key: key, entry: entry)) {
            case .refused(let reason):
                if let replyTo, request != 0 {
                    send(.writeReply(request: request, result: .refused(reason: reason)), toAddress: replyTo)
                }
                return
            case .append(let appended, let bytes):
                sequence = appended
                effects.append(.append(sequence: appended, bytes: bytes))
            case nil:
                break
            }
            store.apply(cacheKey, entry, sequence: sequence, unconditionally: unconditionally)
            if let replyTo, request != 0 {
                answerWhenDurable(
                    sequence, to: replyTo,
                    .writeReply(request: request, result: .stored(previousWasLive: previousWasLive)))
            }
        case .duplicate:
            if let replyTo, request != 0 {
                answerWhenDurable(
                    store.sequence(of: cacheKey), to: replyTo,
                    .writeReply(request: request, result: .stored(previousWasLive: false)))
            }
        case .stale(let current):
            if let replyTo, request != 0 {
                send(.writeReply(request: request, result: .stale(current: current)), toAddress: replyTo)
            }
        }
    }

    /// Sends `body` once the log record `sequence` is durable under the sync policy: a replica never
    /// reports an entry it could still lose.
    mutating func answerWhenDurable(_ sequence: UInt64, to address: String, _ body: ReplicationBody) {
        if sequence == 0 || log == nil || log!.mayAcknowledge(sequence)
            || configuration.injectedBug == .acknowledgeBeforeSync
        {
            send(body, toAddress: address)
        } else {
            awaitingDurability.append((sequence, address, body))
        }
    }

    mutating func releaseDurable() {
        guard let log, !awaitingDurability.isEmpty else { return }
        var waiting: [(sequence: UInt64, to: String, body: ReplicationBody)] = []
        for item in awaitingDurability {
            if log.mayAcknowledge(item.sequence) {
                send(item.body, toAddress: item.to)
            } else {
                waiting.append(item)
            }
        }
        awaitingDurability = waiting
    }

    /// The disk failed: writes waiting for it are refused (their records may never be durable).
    mutating func failAwaitingDurability(reason: String) {
        let waiting = awaitingDurability
        awaitingDurability = []
        for item in waiting {
            if case .writeReply(let request, _) = item.body {
                send(.writeReply(request: request, result: .refused(reason: reason)), toAddress: item.to)
            }
        }
    }

    // MARK: Handoff

    /// Sends the keys this node holds but does not own to their owners, a batch per pass; a key is
    /// dropped once every owner has confirmed it holds the version durably.
    mutating func handOff(now: Instant) {
        var sent = 0
        for key in store.sortedKeys {
            guard sent < configuration.maximumItemsPerMessage, let entry = store.entry(for: key) else { break }
            let owners = replicas(of: key.bytes)
            if owners.contains(me) {
                if let stale = handoffs.removeValue(forKey: key) { handoffRequests[stale.request] = nil }
                continue
            }
            var handoff: Handoff
            if let existing = handoffs[key], existing.version == entry.version {
                handoff = existing
                handoff.waiting = handoff.waiting.filter { owners.contains($0) }
                if handoff.waiting.isEmpty { handoff.waiting = owners }
            } else {
                if let stale = handoffs[key] { handoffRequests[stale.request] = nil }
                handoff = Handoff(version: entry.version, waiting: owners, request: newRequestID())
                handoffRequests[handoff.request] = key
            }
            handoffs[key] = handoff
            for owner in handoff.waiting {
                send(.write(request: handoff.request, key: key.bytes, entry: entry, repair: true), to: owner)
            }
            sent += 1
        }
    }

    mutating func handoffReplied(_ request: UInt64, from node: NodeID, _ result: ReplicaWriteResult) {
        guard let key = handoffRequests[request], var handoff = handoffs[key] else { return }
        if case .refused = result { return }
        handoff.waiting.removeAll { $0 == node }
        if handoff.waiting.isEmpty {
            handoffs[key] = nil
            handoffRequests[request] = nil
            if !replicas(of: key.bytes).contains(me) { store.remove(key, ifVersion: handoff.version) }
        } else {
            handoffs[key] = handoff
        }
    }

    // MARK: Tombstone collection

    /// The key's first replica collects its tombstones (and expired entries) older than the grace
    /// period: it makes sure every replica holds the tombstone, then tells them all to forget it.
    /// Any other replica that still holds one a quarter of the grace period later collects it too: a
    /// replica can be left holding a tombstone the others already forgot (a repair that crossed the
    /// `forget` on the way), and nobody else would ever collect it.
    mutating func collectTombstones(now: Instant) {
        var started = 0
        for key in store.sortedKeys {
            guard started < configuration.maximumItemsPerMessage, let entry = store.entry(for: key) else { break }
            guard !entry.isLive(at: now) else { continue }
            let deadSince = entry.deadSince
            let grace = configuration.injectedBug == .collectTombstonesEarly ? 0 : configuration.tombstoneGrace
            guard deadSince.advanced(byNanoseconds: grace) <= now else { continue }
            let owners = replicas(of: key.bytes)
            guard owners.contains(me) else { continue }
            if owners.first != me {
                guard deadSince.advanced(byNanoseconds: grace + grace / 4) <= now else { continue }
            }
            if configuration.injectedBug == .collectTombstonesEarly {
                forget(key, entry.version, owners: owners)
                continue
            }
            var collection: TombstoneCollection
            if let existing = collections[key], existing.version == entry.version {
                collection = existing
                collection.waiting = collection.waiting.filter { owners.contains($0) }
            } else {
                if let stale = collections[key] { collectionRequests[stale.request] = nil }
                collection = TombstoneCollection(
                    version: entry.version, waiting: owners.filter { $0 != me }, request: newRequestID())
                collectionRequests[collection.request] = key
            }
            collections[key] = collection
            if collection.waiting.isEmpty {
                finishCollection(of: key)
                continue
            }
            for owner in collection.waiting {
                send(.write(request: collection.request, key: key.bytes, entry: entry, repair: true), to: owner)
            }
            started += 1
        }
    }

    mutating func collectionReplied(_ request: UInt64, from node: NodeID, _ result: ReplicaWriteResult) {
        guard let key = collectionRequests[request], var collection = collections[key] else { return }
        switch result {
        case .stored:
            collection.waiting.removeAll { $0 == node }
            collections[key] = collection
            if collection.waiting.isEmpty { finishCollection(of: key) }
        case .stale, .refused:
            // A newer write exists (it will reach this node), or the replica cannot take writes:
            // try again on a later pass.
            break
        }
    }

    mutating func finishCollection(of key: CacheKey) {
        guard let collection = collections.removeValue(forKey: key) else { return }
        collectionRequests[collection.request] = nil
        forget(key, collection.version, owners: replicas(of: key.bytes))
    }

    mutating func forget(_ key: CacheKey, _ version: Version, owners: [NodeID]) {
        for owner in owners where owner != me { send(.forget(key: key.bytes, version: version), to: owner) }
        store.remove(key, ifVersion: version)
    }

    // MARK: Anti-entropy

    /// Sends a digest of the keys this node and one other replicate together to that node.
    mutating func startAntiEntropy() {
        let peers = ring.members.filter { $0 != me }
        guard !peers.isEmpty else { return }
        let peer = peers[random.below(peers.count)]
        let digests = bucketDigests(sharedWith: peer)
        let buckets = digests.keys.sorted().map { DigestBucket(index: $0, digest: digests[$0]!) }
        send(.digest(buckets: buckets), to: peer)
    }

    static func bucket(of key: [UInt8]) -> UInt16 {
        UInt16(truncatingIfNeeded: HashRing.position(ofKey: key) >> 54)
    }

    /// Whether `key` is replicated by both this node and `peer`.
    func shared(_ key: [UInt8], with peer: NodeID) -> Bool {
        let owners = replicas(of: key)
        return owners.contains(me) && owners.contains(peer)
    }

    /// XOR of a hash of each shared key and its version, per bucket (independent of order).
    func bucketDigests(sharedWith peer: NodeID) -> [UInt16: UInt64] {
        var digests: [UInt16: UInt64] = [:]
        for key in store.sortedKeys where shared(key.bytes, with: peer) {
            guard let entry = store.entry(for: key) else { continue }
            var bytes = key.bytes
            withUnsafeBytes(of: entry.version.wall.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: entry.version.logical.littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: entry.version.node.rawValue.utf8)
            digests[Self.bucket(of: key.bytes), default: 0] ^= StableHash.xxh64(bytes)
        }
        return digests
    }

    mutating func digestReceived(_ buckets: [DigestBucket], from peer: NodeID) {
        let mine = bucketDigests(sharedWith: peer)
        var differing = Set<UInt16>()
        for bucket in buckets where mine[bucket.index] != bucket.digest { differing.insert(bucket.index) }
        let theirs = Set(buckets.map(\.index))
        for (index, _) in mine where !theirs.contains(index) { differing.insert(index) }
        guard !differing.isEmpty else { return }
        let chosen = differing.sorted().prefix(configuration.maximumItemsPerMessage)
        let wanted = Set(chosen)
        var versions: [KeyVersion] = []
        for key in store.sortedKeys where wanted.contains(Self.bucket(of: key.bytes)) && shared(key.bytes, with: peer) {
            if let entry = store.entry(for: key) { versions.append(KeyVersion(key: key.bytes, version: entry.version)) }
        }
        send(.summary(buckets: Array(chosen), versions: versions), to: peer)
    }

    mutating func summaryReceived(buckets: [UInt16], versions: [KeyVersion], from peer: NodeID) {
        let wanted = Set(buckets)
        var theirs: [CacheKey: Version] = [:]
        for item in versions { theirs[CacheKey(bytes: item.key)] = item.version }
        var pushes: [ReplicaItem] = []
        for key in store.sortedKeys where wanted.contains(Self.bucket(of: key.bytes)) && shared(key.bytes, with: peer) {
            guard let entry = store.entry(for: key) else { continue }
            if let version = theirs[key], version >= entry.version { continue }
            pushes.append(ReplicaItem(key: key.bytes, entry: entry))
        }
        var pulls: [[UInt8]] = []
        for item in versions where shared(item.key, with: peer) {
            let key = CacheKey(bytes: item.key)
            if let mine = store.entry(for: key), mine.version >= item.version { continue }
            pulls.append(item.key)
        }
        push(pushes, to: peer)
        for start in stride(from: 0, to: pulls.count, by: configuration.maximumItemsPerMessage) {
            let end = min(pulls.count, start + configuration.maximumItemsPerMessage)
            send(.pull(keys: Array(pulls[start..<end])), to: peer)
        }
    }

    mutating func push(_ items: [ReplicaItem], to peer: NodeID) {
        for start in stride(from: 0, to: items.count, by: configuration.maximumItemsPerMessage) {
            let end = min(items.count, start + configuration.maximumItemsPerMessage)
            send(.push(items: Array(items[start..<end])), to: peer)
        }
    }
}
