import CacheCore
import Simulator
import Testing

/// An address no node of a `TestCluster` listens at: what is sent there is lost.
private let nowhere = "10.255.255.1:9"

/// A membership message from `sender`, as an outsider would write it.
private func ping(
    from sender: String, incarnation: UInt64 = 0, claims: [MemberUpdate] = [], at address: String = nowhere
) -> PeerMessage {
    .membership(
        MembershipMessage(
            sender: NodeID(sender), senderAddress: address, senderIncarnation: incarnation, senderTime: start,
            updates: claims, body: .ping(sequence: 1)))
}

/// A ping from member n1 of `cluster` gossiping that `ghost` (at incarnation 0) is `status`.
private func claimByN1(in cluster: TestCluster, ghostIs status: MemberStatus) -> PeerMessage {
    .membership(
        MembershipMessage(
            sender: NodeID("n1"), senderAddress: "n1:7000", senderIncarnation: cluster.node(1).membership.incarnation,
            senderTime: cluster.now,
            updates: [MemberUpdate(id: NodeID("ghost"), address: nowhere, incarnation: 0, status: status)],
            body: .ping(sequence: 7)))
}

/// A frame whose 8 bytes at `offset` are replaced by `value`: what a hand-made frame can say that
/// this node's encoder never writes.
private func patched(_ frame: [UInt8], at offset: Int, with value: UInt64) -> [UInt8] {
    var bytes = frame
    withUnsafeBytes(of: value.littleEndian) { for index in 0..<8 { bytes[offset + index] = $0[index] } }
    return bytes
}

/// The frames of issue 16, sent by hand to a node's peer port: none may take a node down, outrank
/// later writes, or give a member that does not exist a share of the ring.
@Suite("Forged frames")
struct ForgedFrameTests {
    /// A replication write whose version reads `wall = 2^63−1, logical = 2^32−1`: the next client
    /// PUT trapped in `HybridClock.next`, and the log brought it back after every restart.
    @Test func aVersionFromFarAheadIsRefusedAndLaterWritesWin() throws {
        var cluster = TestCluster(size: 3, now: start)
        let key = Array("victim".utf8)
        let forged = VersionedEntry(
            version: Version(wall: .max, logical: .max, node: NodeID("mallory")), value: Array("forged".utf8),
            expiresAt: nil)
        let write = PeerMessage.replication(
            ReplicationMessage(
                sender: NodeID("mallory"), senderAddress: nowhere,
                body: .write(request: 9, key: key, entry: forged, repair: true)))
        // Well formed (the decoder takes it): the node itself judges the version against its clock.
        let frame = PeerProtocol.encode(write)
        #expect(PeerProtocol.decode(frame) == .frame(write, next: frame.count))
        cluster.deliver(write, to: 0)
        #expect(cluster.store(0).entry(for: CacheKey(bytes: key)) == nil)
        #expect(cluster.node(0).statistics.versionsRefused == 1)
        // A version just past the bound is refused too; one within it is taken (last writer wins
        // among clocks that far apart), and outranks only what is written before the bound has
        // passed: client writes made later win.
        let bound = ClusterNode.Configuration.defaultMaximumClockOffset
        for (ahead, taken) in [(bound + .milliseconds(1), false), (bound / 2, true)] {
            let entry = VersionedEntry(
                version: Version(
                    wall: cluster.now.advanced(by: ahead).nanosecondsSinceEpoch, logical: 0, node: NodeID("mallory")),
                value: Array("early".utf8), expiresAt: nil)
            cluster.deliver(
                .replication(
                    ReplicationMessage(
                        sender: NodeID("mallory"), senderAddress: nowhere,
                        body: .push(items: [ReplicaItem(key: key, entry: entry)]))), to: 1)
            #expect((cluster.store(1).entry(for: CacheKey(bytes: key)) != nil) == taken, "\(ahead) ahead")
        }
        cluster.advance(by: bound)
        for (request, coordinator) in [(UInt64(1), 0), (2, 1)] {
            let put = cluster.request(
                request, at: coordinator, .put(key: key, value: [UInt8(request)], ttl: .never, consistency: .all))
            guard case .stored = try #require(put).outcome else {
                Issue.record("a client write after the forged one was not stored: \(String(describing: put))")
                return
            }
            let got = cluster.request(request + 10, at: 2, .get(key: key, consistency: .all))
            guard case .found(let entry) = try #require(got).outcome else {
                Issue.record("the client's write is not read back: \(String(describing: got))")
                return
            }
            #expect(entry.value == [UInt8(request)])
        }
    }

    /// A log written before the bound existed may hold such a version: recovery leaves it out.
    @Test func recoveryDoesNotBringBackAVersionFromFarAhead() {
        let key = Array("victim".utf8)
        var segment = WALSegment.header(firstSequence: 1)
        let forged = VersionedEntry(
            version: Version(wall: .max, logical: .max, node: NodeID("mallory")), value: [1], expiresAt: nil)
        let honest = VersionedEntry(
            version: Version(wall: start.nanosecondsSinceEpoch, logical: 0, node: NodeID("n1")), value: [2],
            expiresAt: nil)
        WALFormat.encode(WALRecord(sequence: 1, operation: .versioned(key: key, entry: forged)), into: &segment)
        WALFormat.encode(
            WALRecord(sequence: 2, operation: .versioned(key: Array("other".utf8), entry: honest)), into: &segment)
        let outcome = Recovery.recover(
            snapshots: [], segments: [.init(firstSequence: 1, bytes: segment)], limits: StoreLimits(), seed: 1,
            me: NodeID("n0"), now: start.advanced(by: .seconds(1)),
            maximumClockOffset: ClusterNode.Configuration.defaultMaximumClockOffset)
        #expect(outcome.store.stored(KeyReference(key)) == nil)
        #expect(outcome.store.stored(KeyReference(Array("other".utf8)))?.value == [2])
        #expect(outcome.report.newestVersion == honest.version)
        #expect(outcome.report.problems.contains { $0.contains("ahead of this node's clock") })
    }

    /// A ping from a sender that is no member, claiming "you are dead at incarnation 2^64−1" and
    /// "another member left" at the same incarnation, killed every node it reached.
    @Test func claimsAtTheTopIncarnationAreRefusedAndNearItChangeNothing() throws {
        var cluster = TestCluster(size: 3, now: start)
        let claims = [
            MemberUpdate(id: NodeID("n0"), address: "n0:7000", incarnation: 0, status: .dead),
            MemberUpdate(id: NodeID("n1"), address: "n1:7000", incarnation: 0, status: .left),
        ]
        let frame = PeerProtocol.encode(ping(from: "mallory", claims: claims))
        // The incarnations of both claims, as the frame carries them (docs/protocol.md's layout).
        let firstClaim = 4 + 2 + (2 + 7) + (2 + nowhere.utf8.count) + 2 + 8 + 8 + 4
        let firstIncarnation = firstClaim + (2 + 2) + (2 + 7) + 2
        let secondIncarnation = firstIncarnation + 8 + 1 + (2 + 2) + (2 + 7) + 2
        let top = patched(patched(frame, at: firstIncarnation, with: .max), at: secondIncarnation, with: .max)
        guard case .invalid(let reason) = PeerProtocol.decode(top) else {
            Issue.record("a claim at incarnation 2^64−1 decoded: \(PeerProtocol.decode(top))")
            return
        }
        #expect(reason.contains("incarnation"))
        // At the highest incarnation a frame may carry, the node refutes without trapping, and a
        // claim that jumps a member's incarnation that far is not believed.
        let near = patched(
            patched(frame, at: firstIncarnation, with: Membership.maximumIncarnation), at: secondIncarnation,
            with: Membership.maximumIncarnation)
        guard case .frame(let message, _) = PeerProtocol.decode(near) else {
            Issue.record("a frame at the top incarnation did not decode")
            return
        }
        for node in 0..<3 { cluster.deliver(message, to: node) }
        for _ in 0..<30 { cluster.advance(by: .milliseconds(100)) }
        for node in 0..<3 {
            let membership = cluster.node(node).membership
            #expect(membership.view.filter { $0.status == .alive }.count == 3, "n\(node): \(membership.view)")
            #expect(membership.incarnation < Membership.maximumIncarnation)
            #expect(membership.claimsIgnored >= 1)
        }
        let put = cluster.request(1, at: 2, .put(key: Array("k".utf8), value: [1], ttl: .never, consistency: .all))
        guard case .stored = try #require(put).outcome else {
            Issue.record("the cluster no longer takes writes at all: \(String(describing: put))")
            return
        }
    }

    /// A ping from `ghost` at an address nobody listens at made it a member; once dead it kept a
    /// share of the ring for good, and `all` failed for most keys.
    @Test func aMemberNobodyReachedTakesNoShareOfTheRing() throws {
        var cluster = TestCluster(size: 3, now: start)
        for node in 0..<3 { cluster.deliver(ping(from: "ghost"), to: node) }
        for node in 0..<3 {
            #expect(cluster.node(node).membership.status(of: NodeID("ghost")) == .alive)
            #expect(!cluster.node(node).ring.members.contains(NodeID("ghost")))
        }
        // Nobody's ping reaches it: it is suspected, declared dead and forgotten, and owned nothing.
        for _ in 0..<120 { cluster.advance(by: .milliseconds(100)) }
        for node in 0..<3 {
            #expect(cluster.node(node).membership.status(of: NodeID("ghost")) == nil)
            #expect(cluster.node(node).ring.members.count == 3)
        }
        // The claim that made it up, still gossiped by a member, does not bring it back; only a
        // higher incarnation (a real member refuting its death) would.
        cluster.deliver(claimByN1(in: cluster, ghostIs: .alive), to: 0)
        #expect(cluster.node(0).membership.status(of: NodeID("ghost")) == nil)
        for index in 0..<20 {
            let put = cluster.request(
                UInt64(index + 1), at: index % 3,
                .put(key: Array("key-\(index)".utf8), value: [1], ttl: .never, consistency: .all))
            guard case .stored = try #require(put).outcome else {
                Issue.record("an `all` write failed: \(String(describing: put))")
                return
            }
        }
    }

    /// A made-up member forgotten while this node was probing it: the probe ends with it, and no
    /// request to probe it (without an address) goes to the others. Whenever the news of its death
    /// arrives during the probe, nothing the node sends is a frame its peers would refuse.
    @Test(arguments: 0..<60)
    func aMemberForgottenDuringItsProbeLeavesNoInvalidMessage(step: Int) {
        var cluster = TestCluster(size: 3, now: start)
        cluster.deliver(ping(from: "ghost"), to: 0)
        for _ in 0..<step { cluster.advance(by: .milliseconds(50)) }
        cluster.deliver(claimByN1(in: cluster, ghostIs: .dead), to: 0)
        for _ in 0..<20 { cluster.advance(by: .milliseconds(100)) }
        #expect(cluster.invalidSends == [])
        #expect(cluster.node(0).membership.status(of: NodeID("ghost")) == nil)
    }

    /// Only an answer to this node's own probe vouches for a member: an ack nobody asked for, or a
    /// full state that answers no join or sync of this node, does not.
    @Test func unsolicitedAcksAndStatesVouchForNobody() {
        var cluster = TestCluster(size: 3, now: start)
        cluster.deliver(ping(from: "ghost"), to: 0)
        cluster.deliver(
            .membership(
                MembershipMessage(
                    sender: NodeID("ghost"), senderAddress: nowhere, senderIncarnation: 0, senderTime: start,
                    updates: [], body: .ack(sequence: 1, target: NodeID("ghost")))), to: 0)
        cluster.deliver(
            .membership(
                MembershipMessage(
                    sender: NodeID("n1"), senderAddress: "n1:7000", senderIncarnation: 0, senderTime: start,
                    updates: [],
                    body: .state(
                        nonce: 42,
                        [
                            MemberUpdate(
                                id: NodeID("ghost"), address: nowhere, incarnation: 0, status: .alive, vouched: true)
                        ]))), to: 0)
        #expect(!cluster.node(0).membership.isVouched(NodeID("ghost")))
        #expect(!cluster.node(0).ring.members.contains(NodeID("ghost")))
    }

    /// A message naming the node itself as its sender would have it answer itself: ignored.
    @Test func aMessageInTheNodesOwnNameIsIgnored() {
        var cluster = TestCluster(size: 3, now: start)
        let key = Array("k".utf8)
        let entry = VersionedEntry(
            version: Version(wall: start.nanosecondsSinceEpoch, logical: 0, node: NodeID("n0")), value: [1],
            expiresAt: nil)
        cluster.deliver(
            .replication(
                ReplicationMessage(
                    sender: NodeID("n0"), senderAddress: "n0:7000", body: .pull(keys: [key]))), to: 0)
        cluster.deliver(
            .replication(
                ReplicationMessage(
                    sender: NodeID("n0"), senderAddress: "n0:7000",
                    body: .push(items: [ReplicaItem(key: key, entry: entry)]))), to: 0)
        #expect(cluster.node(0).statistics.peerMessagesIgnored == 2)
        #expect(cluster.store(0).entry(for: CacheKey(bytes: key)) == nil)
    }

    /// A member's clock readings at the ends of the range: the epoch (this node looks ages ahead of
    /// it), the last representable instant (ages behind), and a reading before the epoch, which
    /// only a hand-made frame can carry. No reading traps, one member cannot make the node refuse
    /// writes, and the decoder refuses the negative one.
    @Test func clockReadingsAtTheEndsOfTheRangeChangeNothingAlone() throws {
        var cluster = TestCluster(size: 3, now: start)
        func pingFromN1(at senderTime: Instant) -> PeerMessage {
            .membership(
                MembershipMessage(
                    sender: NodeID("n1"), senderAddress: "n1:7000",
                    senderIncarnation: cluster.node(1).membership.incarnation, senderTime: senderTime, updates: [],
                    body: .ping(sequence: 11)))
        }
        var request: UInt64 = 0
        for senderTime in [Instant.epoch, .distantFuture, .epoch] {
            let message = pingFromN1(at: senderTime)
            let frame = PeerProtocol.encode(message)
            #expect(PeerProtocol.decode(frame) == .frame(message, next: frame.count))
            for _ in 0..<12 {
                cluster.deliver(message, to: 0)
                cluster.advance(by: .milliseconds(100))
            }
            let node = cluster.node(0)
            #expect(!node.isClockAhead, "one member reading \(senderTime) made n0 refuse writes")
            request += 1
            _ = cluster.request(
                request, at: 0, .put(key: Array("k".utf8), value: [1], ttl: .never, consistency: .quorum))
        }
        let stored = try #require(cluster.replies[request])
        guard case .stored = stored.outcome else {
            Issue.record("a write after the readings answered \(stored.outcome)")
            return
        }
        // Before the epoch: the bytes of the reading patched in, since the encoder never writes one.
        let frame = PeerProtocol.encode(pingFromN1(at: Instant(nanosecondsSinceEpoch: 0x0102_0304_0506_0708)))
        let offset = try #require(
            (0...(frame.count - 8)).first { at in
                frame[at..<(at + 8)].elementsEqual([0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
            })
        guard case .invalid = PeerProtocol.decode(patched(frame, at: offset, with: UInt64(bitPattern: -1))) else {
            Issue.record("a reading before the epoch was decoded")
            return
        }
    }

    /// Out-of-range numbers are malformed frames: expiries before the epoch or beyond the longest
    /// TTL, digest buckets that do not exist, names and addresses that are not ones.
    @Test func outOfRangeFieldsAreMalformed() {
        let version = Version(wall: start.nanosecondsSinceEpoch, logical: 0, node: NodeID("n1"))
        func write(_ entry: VersionedEntry) -> ReplicationBody {
            .write(request: 1, key: [0x6B], entry: entry, repair: false)
        }
        let bodies: [ReplicationBody] = [
            write(VersionedEntry(version: version, value: [1], expiresAt: Instant(nanosecondsSinceEpoch: -1))),
            write(VersionedEntry(version: version, value: [1], expiresAt: .distantFuture)),
            write(
                VersionedEntry(version: Version(wall: -5, logical: 0, node: NodeID("n1")), value: nil, expiresAt: nil)),
            .digest(buckets: [DigestBucket(index: 1024, digest: 1)]),
            .summary(buckets: [UInt16.max], versions: []),
            .pull(keys: Array(repeating: [0x6B], count: PeerProtocol.maximumBatchItems + 1)),
        ]
        for body in bodies {
            #expect(
                PeerProtocol.problem(
                    with: .replication(ReplicationMessage(sender: NodeID("n1"), senderAddress: "n1:7000", body: body)))
                    != nil, "\(body)")
        }
        #expect(PeerProtocol.problem(with: ping(from: "no spaces allowed")) != nil)
        #expect(PeerProtocol.problem(with: ping(from: "ghost", at: "nowhere")) != nil)
        #expect(PeerProtocol.problem(with: ping(from: "ghost", at: "h:70000")) != nil)
        #expect(PeerProtocol.problem(with: ping(from: "ghost", incarnation: Membership.maximumIncarnation + 1)) != nil)
        #expect(PeerProtocol.problem(with: ping(from: "ghost", incarnation: Membership.maximumIncarnation)) == nil)
    }
}
