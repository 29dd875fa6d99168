import Simulator
import Testing

@testable import CacheCore

@Suite("Replication")
struct ReplicationTests {
    /// Readiness is the node's own decision: ready when alone by design or joined, joining while
    /// its seeds have not answered, leaving once it hands its keys off.
    @Test func readinessIsDecidedByTheNode() {
        let now = Instant(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)
        var alone = ClusterNode(me: NodeID("solo"), address: "solo:7000", seed: 1, logPolicy: nil, now: now)
        _ = alone.start(seeds: [], now: now)
        #expect(alone.readiness == .ready)
        var ownSeed = ClusterNode(me: NodeID("self"), address: "self:7000", seed: 1, logPolicy: nil, now: now)
        _ = ownSeed.start(seeds: ["self:7000"], now: now)
        #expect(ownSeed.readiness == .ready)
        var waiting = ClusterNode(me: NodeID("new"), address: "new:7000", seed: 1, logPolicy: nil, now: now)
        _ = waiting.start(seeds: ["elsewhere:7000"], now: now)
        #expect(waiting.readiness == .joining)
        var cluster = TestCluster(size: 3)
        for index in 0..<3 { #expect(cluster.node(index).readiness == .ready) }
        let began = cluster.leave(0)
        #expect(began)
        #expect(cluster.node(0).readiness == .leaving)
    }

    @Test func hybridClockStaysAheadOfWhatItSaw() {
        var clock = HybridClock(node: NodeID("a"))
        let first = clock.next(physical: start)
        let second = clock.next(physical: start)
        #expect(first < second)
        let far = Version(wall: start.nanosecondsSinceEpoch + 5_000_000_000, logical: 7, node: NodeID("b"))
        let observed = clock.observe(far, now: start, maximumOffset: .seconds(6))
        #expect(observed)
        // The physical clock is 5 s behind what it saw, yet the next version is greater.
        #expect(clock.next(physical: start.advanced(byNanoseconds: 1)) > far)
        // Past the bound a reading is refused: it does not move the clock.
        let forged = Version(wall: .max, logical: .max, node: NodeID("x"))
        let adopted = clock.observe(forged, now: start, maximumOffset: .seconds(6))
        #expect(!adopted)
        #expect(clock.next(physical: start.advanced(byNanoseconds: 2)) < forged)
        #expect(Version(wall: 1, logical: 0, node: NodeID("a")) < Version(wall: 1, logical: 0, node: NodeID("b")))
    }

    @Test(arguments: 0..<5)
    func replicasConvergeWhateverTheOrderAndRepetitionOfWrites(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var writes: [(CacheKey, VersionedEntry)] = []
        for _ in 0..<200 {
            let version = Version(
                wall: Int64(random.below(50)), logical: UInt32(random.below(3)), node: NodeID("n\(random.below(3))"))
            let value: [UInt8]? = random.below(4) == 0 ? nil : [UInt8(random.below(256))]
            writes.append(
                (CacheKey("k\(random.below(8))"), VersionedEntry(version: version, value: value, expiresAt: nil)))
        }
        var forward = ReplicaStore()
        for (key, entry) in writes { forward.apply(KeyReference(key), entry, now: start) }
        var shuffled = ReplicaStore()
        var order = writes + writes.prefix(50)
        order.shuffle(using: &random)
        for (key, entry) in order { shuffled.apply(KeyReference(key), entry, now: start) }
        #expect(forward.sortedKeys == shuffled.sortedKeys)
        for key in forward.sortedKeys {
            #expect(forward.entry(for: key) == shuffled.entry(for: key))
            let newest = writes.filter { $0.0 == key }.map(\.1.version).max()
            #expect(forward.entry(for: key)?.version == newest)
        }
        #expect(forward.statistics == shuffled.statistics)
    }

    @Test func aTombstoneKeepsAnOlderWriteFromComingBack() {
        var store = ReplicaStore()
        let key = CacheKey("k")
        let put = VersionedEntry(version: Version(wall: 1, logical: 0, node: NodeID("a")), value: [1], expiresAt: nil)
        let delete = VersionedEntry(
            version: Version(wall: 2, logical: 0, node: NodeID("b")), value: nil, expiresAt: nil)
        #expect(store.apply(KeyReference(key), delete, now: start) == .applied(previousWasLive: false))
        #expect(store.apply(KeyReference(key), put, now: start) == .stale(current: delete.version))
        #expect(store.entry(for: key) == delete)
        #expect(store.apply(KeyReference(key), delete, now: start) == .duplicate)
    }

    @Test func aQuorumWriteIsReadFromAnyNode() throws {
        var cluster = TestCluster(size: 5)
        let key = Array("user:1".utf8)
        _ = cluster.request(1, at: 0, .put(key: key, value: Array("hello".utf8), ttl: .never, consistency: .quorum))
        let stored = try #require(cluster.replies[1])
        guard case .stored(let version, nil) = stored.outcome else {
            Issue.record("put answered \(stored.outcome)")
            return
        }
        #expect(stored.replicas.count == 3)
        #expect(!stored.hinted)
        for (offset, index) in (0..<5).enumerated() {
            _ = cluster.request(UInt64(10 + offset), at: index, .get(key: key, consistency: .quorum))
            let read = try #require(cluster.replies[UInt64(10 + offset)])
            guard case .found(let entry) = read.outcome else {
                Issue.record("read answered \(read.outcome)")
                continue
            }
            #expect(entry.value == Array("hello".utf8) && entry.version == version && entry.expiresAt == nil)
        }
        // Exactly the key's replicas logged it.
        let holders = (0..<5).filter { cluster.store($0).entry(for: CacheKey(bytes: key)) != nil }
        #expect(holders.map { NodeID("n\($0)") } == stored.replicas.sorted())
        _ = cluster.request(20, at: 3, .delete(key: key, consistency: .all))
        let deleted = try #require(cluster.replies[20])
        guard case .deleted(existed: true, _) = deleted.outcome else {
            Issue.record("delete answered \(deleted.outcome)")
            return
        }
        #expect(cluster.request(21, at: 4, .get(key: key, consistency: .one))?.outcome == .notFound)
    }

    @Test func aWriteIsNotAcknowledgedBeforeItsReplicasSynced() throws {
        var cluster = TestCluster(size: 3)
        cluster.slowDisks = [0, 1, 2]
        let key = Array("k".utf8)
        #expect(cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .one)) == nil)
        cluster.slowDisks = [1, 2]
        cluster.settle()
        // One replica synced: enough for `one`.
        guard case .stored = cluster.replies[1]?.outcome else {
            Issue.record("no acknowledgment after a sync: \(String(describing: cluster.replies[1]))")
            return
        }
        #expect(cluster.request(2, at: 0, .put(key: key, value: [2], ttl: .never, consistency: .quorum)) == nil)
        cluster.slowDisks = []
        cluster.settle()
        guard case .stored = cluster.replies[2]?.outcome else {
            Issue.record("quorum write not acknowledged after syncs")
            return
        }
    }

    /// A replica holding a newer version answers an older write "stale", which counts towards the
    /// older write's level: it vouches for the newer entry, so it waits until that one is durable
    /// (found by the simulator's level checker, seed 7; answered at once, a power loss could take
    /// back both writes).
    @Test func aStaleAnswerWaitsUntilTheNewerEntryIsDurable() throws {
        var cluster = TestCluster(size: 3)
        cluster.slowDisks = [0, 1, 2]
        let key = Array("k".utf8)
        // Node 2 writes the newer value while node 0 cannot hear of it; nothing is synced yet.
        cluster.unreachable = [0]
        _ = cluster.request(1, at: 2, .put(key: key, value: [2], ttl: .never, consistency: .one))
        cluster.unreachable = []
        // Node 0, its clock behind, writes an older version; nodes 1 and 2 hold a newer one unsynced.
        cluster.clockOffsets[0] = .milliseconds(-300)
        #expect(cluster.request(2, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .one)) == nil)
        cluster.settle()
        #expect(cluster.replies[2] == nil, "acknowledged on answers that vouch for nothing durable")
        cluster.slowDisks = []
        cluster.settle()
        guard case .stored = cluster.replies[2]?.outcome else {
            Issue.record("not acknowledged once the replicas synced: \(String(describing: cluster.replies[2]))")
            return
        }
    }

    @Test func anUnreachableQuorumAnswersWhichLevelFailed() throws {
        var cluster = TestCluster(size: 3)
        cluster.unreachable = [1, 2]
        let key = Array("k".utf8)
        #expect(cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .quorum)) == nil)
        for _ in 0..<12 { cluster.advance(by: .milliseconds(100)) }
        let reply = try #require(cluster.replies[1])
        // The write's first phase (reading versions) got only this node's answer.
        #expect(reply.outcome == .unavailable(level: .quorum, answered: 1, required: 2))
        // `one` still works.
        _ = cluster.request(2, at: 0, .put(key: key, value: [2], ttl: .never, consistency: .one))
        let one = try #require(cluster.replies[2])
        guard case .stored = one.outcome else {
            Issue.record("write at one answered \(one.outcome)")
            return
        }
    }

    @Test func aReadRepairsAStaleReplica() throws {
        var cluster = TestCluster(size: 3)
        let key = Array("k".utf8)
        cluster.unreachable = [2]
        _ = cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .quorum))
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key)) == nil)
        cluster.unreachable = []
        let read = cluster.request(2, at: 1, .get(key: key, consistency: .all))
        guard case .found(let entry) = read?.outcome, entry.value == [1] else {
            Issue.record("read answered \(String(describing: read))")
            return
        }
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key))?.value == [1])
    }

    @Test func antiEntropyFillsAReplicaThatMissedAWrite() throws {
        var cluster = TestCluster(size: 3)
        let key = Array("k".utf8)
        cluster.unreachable = [2]
        _ = cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .quorum))
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key)) == nil)
        cluster.unreachable = []
        // Anti-entropy alone brings the missing replica up to date within a few intervals.
        for _ in 0..<60 { cluster.advance(by: .milliseconds(100)) }
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key))?.value == [1])
    }

    @Test func expiryTravelsWithTheWriteAndIsNeverServedLate() throws {
        var cluster = TestCluster(size: 3)
        let key = Array("session".utf8)
        _ = cluster.request(1, at: 0, .put(key: key, value: [9], ttl: .after(.seconds(1)), consistency: .all))
        let reply = try #require(cluster.replies[1])
        guard case .stored(_, let expiresAt?) = reply.outcome else {
            Issue.record("put answered \(reply.outcome)")
            return
        }
        for index in 0..<3 { #expect(cluster.store(index).entry(for: CacheKey(bytes: key))?.expiresAt == expiresAt) }
        cluster.advance(by: .seconds(1))
        #expect(cluster.request(2, at: 1, .get(key: key, consistency: .quorum))?.outcome == .notFound)
    }

    @Test func aTombstoneIsCollectedOnlyOnceEveryReplicaHoldsIt() throws {
        var cluster = TestCluster(size: 3, tombstoneGrace: .seconds(2))
        let key = Array("k".utf8)
        cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .all))
        cluster.unreachable = [2]
        cluster.request(2, at: 0, .delete(key: key, consistency: .quorum))
        guard case .deleted(existed: true, _) = cluster.replies[2]?.outcome else {
            Issue.record("delete answered \(String(describing: cluster.replies[2]))")
            return
        }
        // Past the grace period, but one replica cannot confirm: the tombstone stays (and the
        // unreachable replica, which still holds the value, is why). Four seconds is within the
        // failure detector's suspicion time, so that replica still owns the key.
        for _ in 0..<40 { cluster.advance(by: .milliseconds(100)) }
        #expect(cluster.store(0).entry(for: CacheKey(bytes: key))?.value == nil)
        #expect(cluster.store(0).entry(for: CacheKey(bytes: key)) != nil)
        #expect(cluster.store(1).entry(for: CacheKey(bytes: key)) != nil)
        cluster.unreachable = []
        for _ in 0..<40 { cluster.advance(by: .milliseconds(100)) }
        for index in 0..<3 { #expect(cluster.store(index).entry(for: CacheKey(bytes: key)) == nil) }
        #expect(cluster.request(3, at: 2, .get(key: key, consistency: .all))?.outcome == .notFound)
    }

    /// Found by the 6-node sweep (seed 3179): a node restarted while it could reach no seed held a
    /// tombstone past its grace period. Its ring was only itself, so it took itself for the key's only
    /// replica, and its view had no member whose clock could disagree: it collected the tombstone
    /// while the key's real owner still held the older value, which came back. A joining node
    /// collects nothing; once it has joined, the tombstone is collected as usual.
    @Test func aNodeThatIsJoiningCollectsNoTombstone() throws {
        var cluster = TestCluster(size: 3, replicationFactor: 1, tombstoneGrace: .seconds(2))
        let key = Array("k".utf8)
        let owner = try #require(cluster.node(0).replicas(of: key).first)
        let index = try #require((0..<3).first { cluster.node($0).me == owner })
        cluster.request(1, at: index, .put(key: key, value: [1], ttl: .never, consistency: .all))
        cluster.request(2, at: index, .delete(key: key, consistency: .all))
        #expect(cluster.store(index).entry(for: CacheKey(bytes: key))?.value == nil)
        cluster.cut = [index]
        cluster.restart(index)
        #expect(cluster.node(index).isJoining)
        #expect(cluster.store(index).entry(for: CacheKey(bytes: key)) != nil, "the tombstone was not recovered")
        for _ in 0..<50 { cluster.advance(by: .milliseconds(100)) }
        #expect(cluster.node(index).isJoining)
        #expect(cluster.store(index).entry(for: CacheKey(bytes: key)) != nil, "collected while joining")
        cluster.cut = []
        for _ in 0..<50 { cluster.advance(by: .milliseconds(100)) }
        #expect(!cluster.node(index).isJoining)
        #expect(cluster.store(index).entry(for: CacheKey(bytes: key)) == nil, "not collected once joined")
    }

    /// Found by the 5-node sweep (seed 183): an anti-entropy push of a tombstone crossed the collector's
    /// `forget` and put it back on a replica that had just forgotten it; nobody ever collected it again.
    @Test func aCollectedTombstoneIsNotBroughtBackByARepairThatCrossedTheForget() throws {
        var cluster = TestCluster(size: 3, tombstoneGrace: .seconds(2))
        let key = Array("k".utf8)
        cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .all))
        cluster.request(2, at: 0, .delete(key: key, consistency: .all))
        let tombstone = try #require(cluster.store(0).entry(for: CacheKey(bytes: key)))
        #expect(tombstone.value == nil)
        for _ in 0..<40 { cluster.advance(by: .milliseconds(100)) }
        for index in 0..<3 { #expect(cluster.store(index).entry(for: CacheKey(bytes: key)) == nil) }
        // The late push arrives after the collection: the replica holds nothing and keeps nothing.
        let push = ReplicationMessage(
            sender: NodeID("n1"), senderAddress: "n1:7000",
            body: .push(items: [ReplicaItem(key: key, entry: tombstone)]))
        cluster.deliver(.replication(push), to: 2)
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key)) == nil)
        // A tombstone within its grace period is still taken: it may have a stale value to delete.
        cluster.request(3, at: 0, .put(key: key, value: [2], ttl: .never, consistency: .all))
        cluster.unreachable = [2]
        cluster.request(4, at: 0, .delete(key: key, consistency: .quorum))
        cluster.unreachable = []
        let fresh = try #require(cluster.store(0).entry(for: CacheKey(bytes: key)))
        let repair = ReplicationMessage(
            sender: NodeID("n0"), senderAddress: "n0:7000", body: .push(items: [ReplicaItem(key: key, entry: fresh)]))
        cluster.deliver(.replication(repair), to: 2)
        #expect(cluster.store(2).entry(for: CacheKey(bytes: key)) == fresh)
    }

    @Test func recoveryRebuildsTheStoreAndKeepsTheClockAhead() throws {
        var cluster = TestCluster(size: 3)
        let key = Array("k".utf8)
        _ = cluster.request(1, at: 0, .put(key: key, value: [7], ttl: .never, consistency: .all))
        let reply = try #require(cluster.replies[1])
        guard case .stored(let version, _) = reply.outcome else {
            Issue.record("the put was not stored: \(reply.outcome)")
            return
        }
        let lastSequence = try #require(cluster.node(1).log?.lastSequence)
        cluster.restart(1)
        var restarted = cluster.node(1)
        #expect(restarted.store.entry(for: CacheKey(bytes: key))?.version == version)
        #expect(restarted.log?.lastSequence == lastSequence)
        // Its clock is past every version it recovered, even with a physical time behind them.
        #expect(restarted.clock.next(physical: start) > version)
    }

    /// A restarted node remembers no version it made for keys it does not hold: a clock that had
    /// taken a peer's reading ahead of its own would make the same versions again, or older ones,
    /// and a later write at `one` lost to an earlier one on its replica (with one TTL kept for the
    /// other's value: the simulator's "held without its TTL", 5 nodes and one replica). A node makes
    /// no version in its first maximum clock offset: by then its clock is past any it made before.
    @Test func aRestartedNodeMakesNoVersionItMadeBefore() throws {
        var cluster = TestCluster(size: 3) { $0.replicationFactor = 1 }
        cluster.clockOffsets[0] = .milliseconds(-300)
        let keys = (0..<256).map { Array("key-\($0)".utf8) }
        let held = try #require(keys.first { cluster.node(0).replicas(of: $0) == [NodeID("n0")] })
        let remote = try #require(keys.first { cluster.node(0).replicas(of: $0) == [NodeID("n1")] })
        // Node 0 takes node 1's reading, 300 ms ahead of its own, as a replica...
        _ = cluster.request(1, at: 1, .put(key: held, value: [1], ttl: .never, consistency: .one))
        // ...and versions a write to a key only node 1 holds with it.
        let first = cluster.request(
            2, at: 0, .put(key: remote, value: [1], ttl: .after(.seconds(60)), consistency: .one))
        guard case .stored = first?.outcome else {
            Issue.record("the first write was not stored: \(String(describing: first))")
            return
        }
        cluster.restart(0)
        for _ in 0..<2 { cluster.advance(by: .milliseconds(50)) }
        _ = cluster.request(3, at: 0, .put(key: remote, value: [2], ttl: .never, consistency: .one))
        for _ in 0..<10 where cluster.replies[3] == nil { cluster.advance(by: .milliseconds(100)) }
        guard case .stored = cluster.replies[3]?.outcome else {
            Issue.record("the second write was not stored: \(String(describing: cluster.replies[3]))")
            return
        }
        let entry = try #require(cluster.store(1).entry(for: CacheKey(bytes: remote)))
        #expect(entry.value == [2], "the later write lost to the earlier one (\(entry.version))")
        #expect(entry.expiresAt == nil)
        #expect(cluster.node(0).statistics.writesDelayedForClock == 1)
    }

    /// Seen on real processes: a node paused with a client's write in its socket made it 7 s later,
    /// after the client had given up, retried through another node and written the key again: the
    /// late copy took the newest version and undid those writes. A write past the deadline its
    /// client gave is not made (and says why); a read past it is still answered.
    @Test func aWritePastItsClientsDeadlineIsNotMade() throws {
        var cluster = TestCluster(size: 3)
        let key = Array("k".utf8)
        _ = cluster.request(1, at: 0, .put(key: key, value: [1], ttl: .never, consistency: .quorum))
        let passed = cluster.now.advanced(by: .milliseconds(-1))
        let late = cluster.request(
            2, at: 1, .put(key: key, value: [2], ttl: .never, consistency: .quorum), deadline: passed)
        guard case .invalid(let refusal) = late?.outcome else {
            Issue.record("a write past its deadline answered \(String(describing: late))")
            return
        }
        #expect(refusal.kind == .deadlinePassed && refusal.message.contains("X-Cache-Deadline"))
        let lateDelete = cluster.request(3, at: 2, .delete(key: key, consistency: .one), deadline: passed)
        guard case .invalid(let deleteRefusal) = lateDelete?.outcome, deleteRefusal.kind == .deadlinePassed else {
            Issue.record("a delete past its deadline answered \(String(describing: lateDelete))")
            return
        }
        for index in 0..<3 { #expect(cluster.store(index).entry(for: CacheKey(bytes: key))?.value == [1]) }
        #expect(cluster.node(1).statistics.writesPastDeadline == 1)
        let read = cluster.request(4, at: 1, .get(key: key, consistency: .quorum), deadline: passed)
        guard case .found(let entry) = read?.outcome else {
            Issue.record("a read past its deadline answered \(String(describing: read))")
            return
        }
        #expect(entry.value == [1])
        let timely = cluster.request(
            5, at: 1, .put(key: key, value: [3], ttl: .never, consistency: .quorum),
            deadline: cluster.now.advanced(by: .seconds(1)))
        guard case .stored = timely?.outcome else {
            Issue.record("a write within its deadline answered \(String(describing: timely))")
            return
        }
    }

    /// Seen on real processes: a node paused (SIGSTOP) for longer than two clock-lead windows, then
    /// resumed, read the peers' messages queued in its sockets first. Each was late by up to the pause,
    /// and with no recent reading left to compare it with, the node took itself as ahead and refused
    /// the client write that waited in its socket too: refused for the clock (503), not for its
    /// passed deadline, as if that write had never been a risk. A silence keeps the last reading
    /// before it for one more window, so late messages after a pause are forgiven as any late
    /// message is.
    @Test func messagesQueuedDuringAPauseDoNotMakeAClockAhead() throws {
        var cluster = TestCluster(size: 3)
        for _ in 0..<20 { cluster.advance(by: .milliseconds(100)) }
        let pausedAt = cluster.now
        // Paused: nothing reaches n0 and its timers do not fire, for 12 s (many windows).
        cluster.unreachable = [0]
        for _ in 0..<120 { cluster.advance(by: .milliseconds(100)) }
        cluster.unreachable = []
        // Resumed: first what the others sent meanwhile, oldest first, then the waiting write.
        for age in stride(from: 11, through: 1, by: -2) {
            for sender in 1...2 {
                let message = MembershipMessage(
                    sender: NodeID("n\(sender)"), senderAddress: "n\(sender):7000",
                    senderIncarnation: cluster.node(sender).membership.incarnation,
                    senderTime: cluster.now.advanced(by: .seconds(-age)), updates: [],
                    body: .ping(sequence: 1000 + UInt64(age * 10 + sender)))
                cluster.deliver(.membership(message), to: 0)
            }
        }
        let ahead = cluster.node(0).isClockAhead
        #expect(!ahead)
        let late = cluster.request(
            1, at: 0, .put(key: Array("paused".utf8), value: [1], ttl: .never, consistency: .one),
            deadline: pausedAt.advanced(by: .seconds(4)))
        guard case .invalid(let error) = late?.outcome, error.kind == .deadlinePassed else {
            Issue.record("the write waiting through the pause answered \(String(describing: late?.outcome))")
            return
        }
    }

    /// Seen under overload on real processes: a node measured its clock's lead from one message, so a
    /// message 800 ms in transit read as a clock 800 ms ahead, and the node refused every write. A
    /// late message is forgiven (the smallest lead of the last windows counts); a lead that every
    /// message shows for longer than the window is a clock ahead, and writes are refused.
    @Test func lateMessagesDoNotMakeAClockAhead() throws {
        var cluster = TestCluster(size: 3)
        func latePings(delay: Duration) {
            for sender in 1...2 {
                let message = MembershipMessage(
                    sender: NodeID("n\(sender)"), senderAddress: "n\(sender):7000",
                    senderIncarnation: cluster.node(sender).membership.incarnation,
                    senderTime: cluster.now.advanced(by: .zero - delay), updates: [],
                    body: .ping(sequence: 100 + UInt64(sender)))
                cluster.deliver(.membership(message), to: 0)
            }
        }
        latePings(delay: .milliseconds(800))
        let aheadAfterLatePings = cluster.node(0).isClockAhead
        #expect(!aheadAfterLatePings)
        let reply = cluster.request(1, at: 0, .put(key: Array("k".utf8), value: [1], ttl: .never, consistency: .all))
        guard case .stored = reply?.outcome else {
            Issue.record("a put after late messages answered \(String(describing: reply?.outcome))")
            return
        }
        // A clock that does read 800 ms ahead: every message shows the lead, and once the window
        // has passed the node refuses writes.
        cluster.clockOffsets[0] = .milliseconds(800)
        for _ in 0..<120 { cluster.advance(by: .milliseconds(100)) }
        let ahead = cluster.node(0).isClockAhead
        #expect(ahead)
        let refused = cluster.request(2, at: 0, .put(key: Array("k".utf8), value: [2], ttl: .never, consistency: .one))
        guard case .refused = refused?.outcome else {
            Issue.record("a put from a clock ahead answered \(String(describing: refused?.outcome))")
            return
        }
    }
}
