import Foundation
import Testing

@testable import CacheCore

/// A node name or port-like suffix: names are ASCII (`NodeID.isValid`).
private func randomString(_ random: inout SplitMix64, prefix: String) -> String {
    prefix + String(random.next() % 60_000 + 1)
}

private func randomUpdate(_ random: inout SplitMix64) -> MemberUpdate {
    MemberUpdate(
        id: NodeID(randomString(&random, prefix: "node-")), address: randomString(&random, prefix: "10.0.0.1:"),
        clientAddress: random.below(2) == 0 ? "" : randomString(&random, prefix: "10.0.0.1:"),
        incarnation: random.next() % (Membership.maximumIncarnation + 1),
        status: MemberStatus(rawValue: UInt8(random.below(4)))!, vouched: random.below(2) == 0)
}

/// Text of up to `count` characters (keys and values are UTF-8 strings; peers must send them so).
private func randomText(_ random: inout SplitMix64, upTo count: Int) -> [UInt8] {
    let alphabet = Array("abcdefghij:/ é😀\"\\".unicodeScalars)
    var text = ""
    for _ in 0..<random.below(count) { text.unicodeScalars.append(alphabet[random.below(alphabet.count)]) }
    return Array(text.utf8)
}

/// A key: text that is not empty.
private func randomKey(_ random: inout SplitMix64, upTo count: Int) -> [UInt8] {
    Array("k".utf8) + randomText(&random, upTo: count)
}

/// An entry whose every field is in range: a version after the epoch, an expiry within the longest
/// TTL of it (`PeerProtocol.problem(with:)`).
private func randomEntry(_ random: inout SplitMix64) -> VersionedEntry {
    let wall = Int64(random.next() >> 2)
    return VersionedEntry(
        version: Version(
            wall: wall, logical: UInt32(truncatingIfNeeded: random.next()),
            node: NodeID(randomString(&random, prefix: "n"))),
        value: random.below(4) == 0 ? nil : randomText(&random, upTo: 40),
        expiresAt: random.below(2) == 0
            ? nil
            : Instant(nanosecondsSinceEpoch: wall).advanced(
                byNanoseconds: Int64(random.next() % UInt64(PeerProtocol.maximumExpiryNanoseconds))))
}

private func randomReplication(_ random: inout SplitMix64) -> PeerMessage {
    let body: ReplicationBody
    switch random.below(11) {
    case 10: body = .forget(key: randomKey(&random, upTo: 9), version: randomEntry(&random).version)
    case 0:
        body = .write(
            request: random.next(), key: randomKey(&random, upTo: 20), entry: randomEntry(&random),
            repair: random.below(2) == 0)
    case 1: body = .writeReply(request: random.next(), result: .stored(previousWasLive: random.below(2) == 0))
    case 2: body = .writeReply(request: random.next(), result: .stale(current: randomEntry(&random).version))
    case 3: body = .writeReply(request: random.next(), result: .refused(reason: "disk full"))
    case 4: body = .read(request: random.next(), key: randomKey(&random, upTo: 20))
    case 5: body = .readReply(request: random.next(), entry: random.below(3) == 0 ? nil : randomEntry(&random))
    case 6:
        body = .digest(
            buckets: (0..<random.below(10)).map { _ in
                DigestBucket(index: UInt16(random.below(1024)), digest: random.next())
            })
    case 7:
        body = .summary(
            buckets: (0..<random.below(5)).map { _ in UInt16(random.below(1024)) },
            versions: (0..<random.below(5)).map { _ in
                KeyVersion(key: randomKey(&random, upTo: 9), version: randomEntry(&random).version)
            })
    case 8: body = .pull(keys: (0..<random.below(5)).map { _ in randomKey(&random, upTo: 9) })
    default:
        body = .push(
            items: (0..<random.below(5)).map { _ in
                ReplicaItem(key: randomKey(&random, upTo: 9), entry: randomEntry(&random))
            })
    }
    return .replication(
        ReplicationMessage(
            sender: NodeID(randomString(&random, prefix: "s")), senderAddress: "10.0.0.9:7000", body: body))
}

private func randomMessage(_ random: inout SplitMix64) -> PeerMessage {
    if random.below(2) == 0 { return randomReplication(&random) }
    let updates = (0..<random.below(5)).map { _ in randomUpdate(&random) }
    let body: MembershipMessageBody
    switch random.below(6) {
    case 0: body = .ping(sequence: random.next())
    case 1: body = .pingRequest(sequence: random.next(), target: NodeID("t"), targetAddress: "h:1")
    case 2: body = .ack(sequence: random.next(), target: NodeID(randomString(&random, prefix: "n")))
    case 3: body = .join(nonce: random.next())
    case 4: body = .state(nonce: random.next(), (0..<random.below(20)).map { _ in randomUpdate(&random) })
    default: body = .sync(nonce: random.next(), (0..<random.below(20)).map { _ in randomUpdate(&random) })
    }
    return .membership(
        MembershipMessage(
            sender: NodeID(randomString(&random, prefix: "s")), senderAddress: "127.0.0.1:7000",
            senderIncarnation: random.next() % (Membership.maximumIncarnation + 1),
            senderTime: Instant(nanosecondsSinceEpoch: Int64(random.next() >> 1)), updates: updates, body: body))
}

@Suite("Peer protocol")
struct PeerProtocolTests {
    @Test(arguments: 0..<5)
    func messagesRoundTripAndFramesFollowEachOther(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let messages = (0..<50).map { _ in randomMessage(&random) }
        let stream = messages.flatMap(PeerProtocol.encode)
        var offset = 0
        var decoded: [PeerMessage] = []
        while case .frame(let message, let next) = PeerProtocol.decode(stream, at: offset) {
            decoded.append(message)
            offset = next
        }
        #expect(decoded == messages)
        #expect(offset == stream.count)
        #expect(PeerProtocol.decode(stream, at: offset) == .needMoreBytes)
    }

    /// The example of `docs/protocol.md`, byte for byte (also the fuzzer's seed `corpus/peer-frame/ping`).
    @Test func encodingMatchesTheDocumentedExample() {
        let message = PeerMessage.membership(
            MembershipMessage(
                sender: NodeID("n1"), senderAddress: "10.0.0.1:7000", senderClientAddress: "10.0.0.1:8000",
                senderIncarnation: 0,
                updates: [
                    MemberUpdate(
                        id: NodeID("n2"), address: "10.0.0.2:7000", clientAddress: "10.0.0.2:8000", incarnation: 3,
                        status: .suspect)
                ],
                body: .ping(sequence: 7)))
        let documented: [UInt8] = [
            0x6C, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02, 0x00, 0x6E, 0x31, 0x0D, 0x00, 0x31, 0x30, 0x2E, 0x30, 0x2E, 0x30,
            0x2E, 0x31, 0x3A, 0x37, 0x30, 0x30, 0x30, 0x0D, 0x00, 0x31, 0x30, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x31, 0x3A,
            0x38, 0x30, 0x30, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            // senderTime (protocol 2): 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x6E, 0x32, 0x0D, 0x00, 0x31, 0x30, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x32, 0x3A, 0x37, 0x30, 0x30, 0x30, 0x0D,
            0x00, 0x31, 0x30, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x32, 0x3A, 0x38, 0x30, 0x30, 0x30, 0x03, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]
        #expect(PeerProtocol.encode(message) == documented)
        #expect(PeerProtocol.decode(documented) == .frame(message, next: documented.count))
    }

    @Test func everyStrictPrefixAsksForMoreBytes() {
        var random = SplitMix64(seed: 42)
        let frame = PeerProtocol.encode(randomMessage(&random))
        for length in 0..<frame.count {
            #expect(PeerProtocol.decode(Array(frame[..<length])) == .needMoreBytes, "prefix \(length)")
        }
    }

    /// Keys and values are bytes (Redis-protocol clients write any): they cross between nodes as sent.
    @Test func binaryKeysAndValuesCrossIntact() {
        let entry = VersionedEntry(
            version: Version(wall: 5, logical: 0, node: NodeID("n")), value: [0xC3, 0x00, 0xFF], expiresAt: nil)
        let message = PeerMessage.replication(
            ReplicationMessage(
                sender: NodeID("a"), senderAddress: "b:1",
                body: .write(request: 7, key: [0xFF, 0xFE], entry: entry, repair: false)))
        let frame = PeerProtocol.encode(message)
        #expect(PeerProtocol.decode(frame) == .frame(message, next: frame.count))
    }

    /// Bytes from peers are input: a key or value the node itself would refuse closes the connection.
    @Test(arguments: [
        ([UInt8](), [UInt8]("v".utf8)), ([UInt8](repeating: 0x61, count: 1025), [UInt8]("v".utf8)),
    ])
    func keysAndValuesOverTheLimitsAreRefused(key: [UInt8], value: [UInt8]) {
        // Encoded by hand: the encoder itself refuses to write them.
        var frame: [UInt8] = [0, 0, 0, 0, 2, 2, 1, 0, 0x61, 3, 0, 0x62, 0x3A, 0x31, 1]
        frame += withUnsafeBytes(of: UInt64(7).littleEndian, Array.init)
        frame += withUnsafeBytes(of: UInt32(key.count).littleEndian, Array.init) + key
        frame += [UInt8](repeating: 0, count: 12) + [1, 0, 0x6E, 1]
        frame += withUnsafeBytes(of: UInt32(value.count).littleEndian, Array.init) + value + [0]
        let length = UInt32(frame.count - 4).littleEndian
        withUnsafeBytes(of: length) { for index in 0..<4 { frame[index] = $0[index] } }
        #expect(PeerProtocol.decode(frame) == .invalid(reason: "malformed replication message"))
        // The same frame with an acceptable key and value decodes.
        var good: [UInt8] = [0, 0, 0, 0, 2, 2, 1, 0, 0x61, 3, 0, 0x62, 0x3A, 0x31, 1]
        good += withUnsafeBytes(of: UInt64(7).littleEndian, Array.init)
        good += withUnsafeBytes(of: UInt32(1).littleEndian, Array.init) + [0x6B]
        good += [UInt8](repeating: 0, count: 12) + [1, 0, 0x6E, 1]
        good += withUnsafeBytes(of: UInt32(1).littleEndian, Array.init) + [0x76] + [0]
        let goodLength = UInt32(good.count - 4).littleEndian
        withUnsafeBytes(of: goodLength) { for index in 0..<4 { good[index] = $0[index] } }
        guard case .frame = PeerProtocol.decode(good) else {
            Issue.record("a well-formed write frame did not decode: \(PeerProtocol.decode(good))")
            return
        }
    }

    @Test func malformedFramesAreRefusedNotTrapped() {
        var random = SplitMix64(seed: 3)
        let frame = PeerProtocol.encode(randomMessage(&random))
        var wrongVersion = frame
        wrongVersion[4] = 9
        #expect(PeerProtocol.decode(wrongVersion) == .invalid(reason: "unsupported protocol version"))
        var trailing = frame + [0]
        trailing[0] &+= 1
        #expect(PeerProtocol.decode(trailing) == .invalid(reason: "trailing bytes in frame"))
        #expect(
            PeerProtocol.decode([0xFF, 0xFF, 0xFF, 0xFF, 1]) == .invalid(reason: "frame length 4294967295 out of range")
        )
        // A huge update count in a small frame is refused without reserving memory for it.
        let hostile: [UInt8] =
            [35, 0, 0, 0, 2, 1, 1, 0, 0x61, 5, 0, 0x61, 0x3A, 0x31, 0x30, 0x30, 0, 0]
            + [UInt8](repeating: 0, count: 16) + [0xFF, 0xFF, 0xFF, 0xFF, 0]
        guard case .invalid = PeerProtocol.decode(hostile) else {
            Issue.record("accepted a hostile update count")
            return
        }
        // Random bytes: any outcome but a trap.
        for seed in 0..<2000 {
            var bytes = SplitMix64(seed: UInt64(seed))
            let garbage = (0..<bytes.below(64)).map { _ in UInt8(truncatingIfNeeded: bytes.next()) }
            _ = PeerProtocol.decode(garbage)
            var flipped = frame
            flipped[bytes.below(flipped.count)] ^= UInt8(truncatingIfNeeded: bytes.next() | 1)
            _ = PeerProtocol.decode(flipped)
        }
    }

    /// The fuzzer's seeds are well-formed streams in the current format (a format change must regenerate them,
    /// or the fuzzer starts from bytes the decoder refuses at the first field).
    @Test func fuzzSeedCorpusDecodesToTheEnd() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/corpus/peer-frame").standardized
        // After a format change: `REGENERATE_FUZZ_CORPUS=1 swift test --filter fuzzSeedCorpus` writes them anew.
        if ProcessInfo.processInfo.environment["REGENERATE_FUZZ_CORPUS"] != nil {
            let nodeDirectory = directory.deletingLastPathComponent().appendingPathComponent("node-frames")
            try FileManager.default.createDirectory(at: nodeDirectory, withIntermediateDirectories: true)
            for (name, messages) in PeerProtocolTests.corpusSeeds() {
                try Data(messages.flatMap(PeerProtocol.encode)).write(to: directory.appendingPathComponent(name))
                // The node fuzzer's steps (Fuzz/node-frames.swift): each frame, then a client write and
                // some time passing.
                let steps: [UInt8] = messages.flatMap { message -> [UInt8] in
                    [0] + PeerProtocol.encode(message) + [2, 1, 1, 20]
                }
                try Data(steps).write(to: nodeDirectory.appendingPathComponent(name))
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 6)
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
            var offset = 0
            var frames = 0
            while case .frame(_, let next) = PeerProtocol.decode(bytes, at: offset) {
                offset = next
                frames += 1
            }
            #expect(frames > 0 && offset == bytes.count, "corpus/peer-frame/\(name)")
        }
    }

    /// The fuzzers' seed streams, one named file each (`Fuzz/corpus/peer-frame`, and the frames the
    /// node fuzzer replays): each kind of frame a cluster sends.
    static func corpusSeeds() -> [(String, [PeerMessage])] {
        let version = Version(wall: 1_700_000_000_000_000_000, logical: 3, node: NodeID("n1"))
        let entry = VersionedEntry(
            version: version, value: Array("value".utf8),
            expiresAt: Instant(nanosecondsSinceEpoch: 1_700_000_060_000_000_000))
        let updates = [
            MemberUpdate(
                id: NodeID("n1"), address: "127.0.0.1:9000", clientAddress: "127.0.0.1:8000", incarnation: 0,
                status: .alive, vouched: true),
            MemberUpdate(
                id: NodeID("n2"), address: "127.0.0.1:9001", clientAddress: "127.0.0.1:8001", incarnation: 2,
                status: .suspect, vouched: true),
        ]
        func membership(_ body: MembershipMessageBody, updates piggybacked: [MemberUpdate] = []) -> PeerMessage {
            .membership(
                MembershipMessage(
                    sender: NodeID("n2"), senderAddress: "127.0.0.1:9001", senderClientAddress: "127.0.0.1:8001",
                    senderIncarnation: 2, senderTime: Instant(nanosecondsSinceEpoch: 1_700_000_000_000_000_000),
                    updates: piggybacked, body: body))
        }
        func replication(_ body: ReplicationBody) -> PeerMessage {
            .replication(ReplicationMessage(sender: NodeID("n2"), senderAddress: "127.0.0.1:9001", body: body))
        }
        let ping = membership(.ping(sequence: 7), updates: [updates[1]])
        let write = replication(.write(request: 11, key: Array("key".utf8), entry: entry, repair: false))
        return [
            ("ping", [ping]),
            ("state", [membership(.state(nonce: 5, updates)), membership(.join(nonce: 6))]),
            ("replica-write", [write, replication(.writeReply(request: 11, result: .stored(previousWasLive: true)))]),
            (
                "anti-entropy-summary",
                [
                    replication(.digest(buckets: [DigestBucket(index: 3, digest: 99)])),
                    replication(
                        .summary(buckets: [3], versions: [KeyVersion(key: Array("key".utf8), version: version)])),
                    replication(.pull(keys: [Array("key".utf8)])),
                ]
            ),
            ("anti-entropy-push", [replication(.push(items: [ReplicaItem(key: Array("key".utf8), entry: entry)]))]),
            (
                "stream",
                [
                    ping, write, replication(.read(request: 12, key: Array("key".utf8))),
                    replication(.readReply(request: 12, entry: entry)),
                    membership(.ack(sequence: 7, target: NodeID("n2"))),
                    membership(.sync(nonce: 8, updates)),
                    replication(.forget(key: Array("key".utf8), version: version)),
                ]
            ),
        ]
    }
}
