import CacheCore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A value of `/metrics` by the start of its line.
/// Writes `secrets` (one per line) to `file`.
private func writeSecrets(_ secrets: [String], to file: URL) throws {
    try Data((secrets.joined(separator: "\n") + "\n").utf8).write(to: file)
}

/// A replication write of `key` by a sender that is no member, as an outsider would send it.
private func mallorysWrite(of key: String, wall: Int64, logical: UInt32) -> PeerMessage {
    .replication(
        ReplicationMessage(
            sender: NodeID("mallory"), senderAddress: "127.0.0.1:9",
            body: .write(
                request: 5, key: Array(key.utf8),
                entry: VersionedEntry(
                    version: Version(wall: wall, logical: logical, node: NodeID("mallory")),
                    value: Array("forged".utf8), expiresAt: nil),
                repair: false)))
}

private let oldSecret = "old-secret-0123456789abcdefghijklmnopqrstuv"
private let newSecret = "new-secret-0123456789abcdefghijklmnopqrstuv"
private let strangerSecret = "stranger-secret-0123456789abcdefghijklmnopq"

/// The frames of issue 16 on a real node's peer port, and peers that must prove they hold the
/// cluster's secret.
@Suite("Peer security with real processes", .realProcesses, .serialized, .timeLimit(.minutes(5)))
struct PeerSecurityProcessTests {
    /// Without authentication (a loopback cluster as `make run` starts it), the forged frames of the
    /// issue take no node down and change nothing that matters: a far-future version is refused
    /// (and no PUT traps after it, before or after a restart), a ping from a sender that is no
    /// member claiming deaths at the top incarnation is refused, and a made-up member owns no keys.
    @Test func forgedFramesTakeNoNodeDown() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            try await cluster.startAll(["n1", "n2", "n3"])
            defer {
                // What the nodes said, should anything below fail.
                for member in cluster.members where member.process?.log.contains("Fatal error") == true {
                    Issue.record("\(member.id) trapped: \(member.process?.log.suffix(3000) ?? "")")
                }
            }
            let forgedWrite = mallorysWrite(of: "victim", wall: .max, logical: .max)
            let ghostPing = PeerMessage.membership(
                MembershipMessage(
                    sender: NodeID("ghost"), senderAddress: "127.0.0.1:9", senderIncarnation: 0,
                    senderTime: Instant(nanosecondsSinceEpoch: 0), updates: [], body: .ping(sequence: 1)))
            // "n1 is dead, n2 left, at incarnation 2^64−1", as the encoder would never write it.
            var topClaims = PeerProtocol.encode(
                .membership(
                    MembershipMessage(
                        sender: NodeID("ghost"), senderAddress: "127.0.0.1:9", senderIncarnation: 0,
                        senderTime: Instant(nanosecondsSinceEpoch: 0),
                        updates: [
                            MemberUpdate(id: NodeID("n1"), address: "127.0.0.1:1", incarnation: 0, status: .dead),
                            MemberUpdate(id: NodeID("n2"), address: "127.0.0.1:1", incarnation: 0, status: .left),
                        ], body: .ping(sequence: 1))))
            let firstIncarnation = 4 + 2 + (2 + 5) + (2 + 11) + 2 + 8 + 8 + 4 + (2 + 2) + (2 + 11) + 2
            for offset in [firstIncarnation, firstIncarnation + 8 + 1 + (2 + 2) + (2 + 11) + 2] {
                for index in 0..<8 { topClaims[offset + index] = 0xFF }
            }
            for frame in [PeerProtocol.encode(forgedWrite), PeerProtocol.encode(ghostPing), topClaims] {
                for member in cluster.members {
                    let peer = try HTTPTestClient(port: member.peerPort)
                    try peer.send(frame)
                }
            }
            // Every node still serves, takes writes, and a write after the forged one is what is read.
            try await Task.sleep(for: .milliseconds(500))
            for member in cluster.members {
                let client = try cluster.client(member.id)
                #expect(try client.request("GET", "/health").status == 200, "\(member.id) is down")
            }
            let client = try cluster.client("n1")
            #expect(try client.put("victim", "honest", level: "all").status == 200)
            #expect(try client.value("victim", level: "all") == "honest")
            // The ghost owns nothing: once nobody reaches it, it is forgotten, and `all` works for every key.
            // (Each node must probe it, time its suspicion out and stop hearing it gossiped: under the
            // load of the whole suite, Lifeguard stretches those periods several times.)
            var seen: [String: [String: String]] = [:]
            do {
                try await eventually("the ghost forgotten everywhere", timeout: .seconds(90)) {
                    for member in cluster.members { seen[member.id] = try? cluster.statuses(seenBy: member.id) }
                    return cluster.members.allSatisfy { seen[$0.id].map { $0["ghost"] == nil } ?? false }
                }
            } catch {
                Issue.record("last seen: \(seen)")
                for member in cluster.members where seen[member.id] == nil {
                    Issue.record("\(member.id) does not answer: \(member.process?.log.suffix(4000) ?? "")")
                }
                throw error
            }
            for index in 0..<20 {
                let response = try client.put("key-\(index)", "v", level: "all")
                #expect(response.status == 200, "key-\(index): \(response.text)")
            }
            // A restart brings back nothing forged: the next PUT works there too.
            try await cluster.kill("n1")
            try await cluster.restart("n1")
            try await cluster.waitForMembership(alive: ["n1", "n2", "n3"])
            let restarted = try cluster.client("n1")
            #expect(try restarted.put("victim", "after-restart", level: "all").status == 200)
            #expect(try restarted.value("victim", level: "all") == "after-restart")
            #expect(try metric("cache_peer_connections_closed_invalid_total", of: try cluster.client("n2")) ?? 0 >= 1)
        }
    }

    /// With a cluster secret, members form a cluster; a process without the secret (or with another)
    /// cannot join, and frames sent without the handshake never reach the node.
    @Test func withoutTheSecretAProcessCannotJoinWriteOrGossip() async throws {
        try await withTemporaryDirectory { directory in
            let secrets = directory.appendingPathComponent("secrets")
            try writeSecrets([oldSecret], to: secrets)
            let cluster = LocalCluster(directory: directory, common: ["CLUSTER_SECRET_FILE": secrets.path])
            try await cluster.startAll(["n1", "n2"])
            let strangerSecrets = directory.appendingPathComponent("stranger")
            try writeSecrets([strangerSecret], to: strangerSecrets)
            try await cluster.start("intruder", settings: ["CLUSTER_SECRET_FILE": strangerSecrets.path])
            try await cluster.start("plain", settings: ["CLUSTER_SECRET_FILE": ""])
            // A ping and a write by hand, straight onto the peer port, no handshake.
            let write = mallorysWrite(of: "planted", wall: 1, logical: 0)
            let peer = try HTTPTestClient(port: cluster.member("n1").peerPort)
            try peer.send(PeerProtocol.encode(write))
            #expect(peer.readsEndOfStream(), "n1 kept a connection that skipped the handshake")
            try await Task.sleep(for: .seconds(3))
            for observer in ["n1", "n2"] {
                let statuses = try cluster.statuses(seenBy: observer)
                #expect(
                    statuses["intruder"] == nil && statuses["plain"] == nil && statuses["mallory"] == nil, "\(statuses)"
                )
            }
            for outsider in ["intruder", "plain"] {
                #expect(try cluster.statuses(seenBy: outsider).keys.sorted() == [outsider])
            }
            let client = try cluster.client("n1")
            #expect(try client.value("planted", level: "all") == nil)
            #expect(try client.put("k", "v", level: "all").status == 200)
            #expect(try metric("cache_peer_authentication_failures_total", of: client) ?? 0 >= 2)
            // Logged once per address, not once per connection.
            let log = cluster.member("n1").process?.log ?? ""
            #expect(log.components(separatedBy: "refused a peer connection").count - 1 == 1, "\(log.suffix(2000))")
        }
    }

    /// A secret is rotated without a restart and without a moment apart: add the new one second,
    /// make it first, remove the old one, each step a SIGHUP on every node. A node that restarts at
    /// the end holds only the new secret and joins; one that holds only the old cannot.
    @Test func aSecretRotatesWithoutDowntime() async throws {
        try await withTemporaryDirectory { directory in
            let ids = ["n1", "n2", "n3"]
            let files = Dictionary(
                uniqueKeysWithValues: ids.map { ($0, directory.appendingPathComponent("\($0).secrets")) })
            for id in ids { try writeSecrets([oldSecret], to: files[id]!) }
            let cluster = LocalCluster(directory: directory)
            for id in ids { try await cluster.start(id, settings: ["CLUSTER_SECRET_FILE": files[id]!.path]) }
            try await cluster.waitForMembership(alive: ids)
            var written = 0
            for step in [[oldSecret, newSecret], [newSecret, oldSecret], [newSecret]] {
                for id in ids {
                    try writeSecrets(step, to: files[id]!)
                    cluster.member(id).process?.send(SIGHUP)
                    // A node restarting mid-rotation makes new connections to every other.
                    // Alive by gossip is not yet reached by every link: a node that failed to
                    // reach n3 while it was down waits until n3 speaks to it (PeerLink), so the
                    // checks below start once each node has written to all three.
                    if id == "n2" {
                        try await cluster.kill("n3")
                        try await cluster.restart("n3")
                        try await cluster.waitForMembership(alive: ids)
                        try await eventually("every node writes to all three after n3's restart") {
                            try ids.allSatisfy { try cluster.client($0).put("settle", "v", level: "all").status == 200 }
                        }
                    }
                }
                try await cluster.waitForMembership(alive: ids)
                for id in ids {
                    written += 1
                    let response = try cluster.client(id).put("rotation-\(written)", "v", level: "all")
                    #expect(response.status == 200, "step \(step.count) secrets, write through \(id): \(response.text)")
                }
            }
            for id in ids {
                let log = cluster.member(id).process?.log ?? ""
                #expect(log.contains("reloaded the cluster secrets"), "\(id) did not reload")
            }
            let stale = directory.appendingPathComponent("stale.secrets")
            try writeSecrets([oldSecret], to: stale)
            let failures = try metric("cache_peer_authentication_failures_total", of: cluster.client("n1")) ?? 0
            try await cluster.start("stale", settings: ["CLUSTER_SECRET_FILE": stale.path])
            // It tried, and was refused: then it is not a member.
            try await eventually("n1 refused the stale node's handshake", timeout: .seconds(20)) {
                try (metric("cache_peer_authentication_failures_total", of: cluster.client("n1")) ?? 0) > failures
            }
            #expect(try cluster.statuses(seenBy: "n1")["stale"] == nil)
        }
    }

    /// Secure by default: a node whose HOST reaches beyond loopback does not start without peer
    /// authentication unless told that is intended; a secrets file that is too weak is refused.
    @Test func aNodeReachableFromOtherMachinesNeedsASecretOrAnExplicitOptOut() async throws {
        try await withTemporaryDirectory { directory in
            let refused = try NodeProcess(environment: ["HOST": "0.0.0.0", "PORT": "0", "PEER_PORT": "0"])
            #expect(try await refused.waitForExit() == 2)
            #expect(refused.log.contains("CLUSTER_SECRET_FILE"), "\(refused.log)")
            let weak = directory.appendingPathComponent("weak")
            try writeSecrets(["short"], to: weak)
            let weakNode = try NodeProcess(
                environment: ["PORT": "0", "PEER_PORT": "0", "CLUSTER_SECRET_FILE": weak.path])
            #expect(try await weakNode.waitForExit() == 2)
            #expect(weakNode.log.contains("at least 32"), "\(weakNode.log)")
            let (optedOut, client) = try await NodeProcess.serving(
                environment: ["HOST": "0.0.0.0", "PORT": "0", "PEER_PORT": "0", "ALLOW_UNAUTHENTICATED_PEERS": "true"])
            #expect(try client.request("GET", "/health").status == 200)
            optedOut.send(SIGTERM)
            _ = try await optedOut.waitForExit()
        }
    }

    /// The peer port holds at most MAX_CONNECTIONS, and a connection that never finishes its
    /// handshake is closed: an outsider cannot hold the port's places.
    @Test func thePeerPortIsBoundedAndSilentConnectionsAreClosed() async throws {
        try await withTemporaryDirectory { directory in
            let secrets = directory.appendingPathComponent("secrets")
            try writeSecrets([oldSecret], to: secrets)
            let cluster = LocalCluster(
                directory: directory, common: ["CLUSTER_SECRET_FILE": secrets.path, "MAX_CONNECTIONS": "3"])
            let node = try await cluster.start("solo")
            let started = ContinuousClock.now
            let held = try (0..<3).map { _ in try HTTPTestClient(port: node.peerPort) }
            // The node has taken all three before the fourth comes (it counts them as it accepts).
            try await eventually("the node holding three peer connections", timeout: .seconds(5)) {
                try cluster.client("solo").request("GET", "/metrics").text.contains("cache_peer_connections_open 3")
            }
            let refused = try HTTPTestClient(port: node.peerPort)
            #expect(refused.readsEndOfStream(), "a peer connection past the limit was kept")
            // Silent: no handshake within its 10 seconds, and each is closed.
            for connection in held { #expect(connection.readsEndOfStream()) }
            #expect(ContinuousClock.now - started < .seconds(14))
            let metrics = try cluster.client("solo").request("GET", "/metrics").text
            #expect(metrics.contains("cache_peer_connections_refused_total 1"), "\(metrics.prefix(300))")
        }
    }

    /// A "seed" that takes the connection and never answers the handshake does not make the node
    /// pile up frames for it: the node gives the connection up within the answer timeout.
    @Test func aPeerThatNeverAnswersTheHandshakeIsGivenUp() async throws {
        try await withTemporaryDirectory { directory in
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(listener, pointer, length) == 0 && listen(listener, 8) == 0
                        && getsockname(listener, pointer, &length) == 0
                }
            }
            #expect(bound)
            let port = Int(UInt16(bigEndian: address.sin_port))
            let secrets = directory.appendingPathComponent("secrets")
            try writeSecrets([oldSecret], to: secrets)
            let cluster = LocalCluster(directory: directory, common: ["CLUSTER_SECRET_FILE": secrets.path])
            try await cluster.start("n1", settings: ["SEEDS": "127.0.0.1:\(port)"])
            let started = ContinuousClock.now
            let connection = accept(listener, nil, nil)
            #expect(connection >= 0)
            defer { close(connection) }
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 4096)
            var received = 0
            while true {
                let count = recv(connection, &buffer, buffer.count, 0)
                if count <= 0 { break }
                received += count
            }
            let waited = ContinuousClock.now - started
            #expect(received == 45, "the node sent \(received) bytes before an answer")
            #expect(waited >= .seconds(9) && waited < .seconds(15), "given up after \(waited)")
        }
    }
}
