import CacheCore
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Reads known keys at `quorum` on a thread of its own, through whichever nodes it is given, and
/// records every read that did not answer the expected value.
final class BackgroundReader: Sendable {
    private let ports = Mutex<[Int]>([])
    private let failures = Mutex<[String]>([])
    private let reads = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    init(expected: [String: String]) {
        let keys = expected.keys.sorted()
        Thread { [self] in
            var random = SplitMix64(seed: 7)
            var clients: [Int: HTTPTestClient] = [:]
            while !stopping.load(ordering: .relaxed) {
                let current = ports.withLock { $0 }
                guard !current.isEmpty else {
                    usleep(10_000)
                    continue
                }
                let port = current[random.below(current.count)]
                let key = keys[random.below(keys.count)]
                do {
                    let client = try clients[port] ?? HTTPTestClient(port: port)
                    clients[port] = client
                    let value = try client.value(key, level: "quorum")
                    if value != expected[key] { record("\(key) through :\(port) read \(value ?? "nothing")") }
                } catch {
                    clients[port] = nil
                    record("\(key) through :\(port): \(error)")
                }
                reads.add(1, ordering: .relaxed)
            }
            finished.store(true, ordering: .releasing)
        }.start()
    }

    private func record(_ failure: String) {
        failures.withLock { if $0.count < 20 { $0.append(failure) } }
    }

    /// The HTTP ports to read through from now on.
    func readThrough(_ newPorts: [Int]) {
        ports.withLock { $0 = newPorts }
    }

    var readCount: Int { reads.load(ordering: .relaxed) }

    /// Stops reading and returns the failures (at most 20).
    func stop() async -> [String] {
        stopping.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(10)) }
        return failures.withLock { $0 }
    }
}

/// What a node restarted after missing writes answers at `quorum` at once; the violations found.
private func restartedNodeReadsAtQuorum(injectedBug: String?) async throws -> [String] {
    try await withTemporaryDirectory { directory in
        let cluster = LocalCluster(directory: directory)
        try await cluster.start("n0")
        try await cluster.start("n1")
        try await cluster.start("n2", settings: injectedBug.map { ["INJECT_BUG": $0] } ?? [:])
        try await cluster.waitForMembership(alive: ["n0", "n1", "n2"])
        let keys = (0..<60).map { "k\($0)" }
        let n0 = try cluster.client("n0")
        for key in keys { #expect(try n0.put(key, "old", level: "all").status == 200) }
        try await cluster.kill("n2")
        for key in keys { #expect(try n0.put(key, "new", level: "quorum").status == 200) }
        try await cluster.restart("n2")
        try await eventually("n2 ready") { (try? cluster.client("n2").request("GET", "/ready").status) == 200 }
        // At once: before anti-entropy could bring n2 up to date, its own replica is stale.
        let n2 = try cluster.client("n2")
        var violations: [String] = []
        for key in keys {
            let value = try n2.value(key, level: "quorum")
            if value != "new" { violations.append("\(key): read \(value ?? "nothing") after a quorum write of new") }
        }
        return violations
    }
}

@Suite("Cluster with real processes", .realProcesses, .serialized, .timeLimit(.minutes(5)))
struct ClusterProcessTests {
    @Test func writesThroughOneNodeAreReadThroughTheOthersAtEveryLevel() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            for id in ["n0", "n1", "n2"] { try await cluster.start(id) }
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2"])
            let writer = try cluster.client("n0")
            // Each write level with the read levels that must see it (R + W > N).
            let levels = [("one", ["all"]), ("quorum", ["quorum", "all"]), ("all", ["one", "quorum", "all"])]
            for (level, readLevels) in levels {
                for index in 0..<20 {
                    #expect(try writer.put("\(level)-\(index)", "v\(index)", level: level).status == 200)
                }
                for reader in ["n1", "n2"] {
                    let client = try cluster.client(reader)
                    for readLevel in readLevels {
                        for index in 0..<20 {
                            #expect(
                                try client.value("\(level)-\(index)", level: readLevel) == "v\(index)",
                                "written at \(level) through n0, read at \(readLevel) through \(reader)")
                        }
                    }
                }
            }
            // A write at `one` reaches every replica soon after: read at `one` anywhere.
            try await eventually("writes at one on every replica") {
                for reader in ["n1", "n2"] {
                    let client = try cluster.client(reader)
                    for index in 0..<20 where try client.value("one-\(index)", level: "one") != "v\(index)" {
                        return false
                    }
                }
                return true
            }
            // Deletes at every level, through another node.
            let deleter = try cluster.client("n1")
            for (index, level) in ["one", "quorum", "all"].enumerated() {
                #expect(try deleter.request("DELETE", "/delete/all-\(index)?consistency=\(level)").status == 200)
                #expect(try cluster.client("n2").value("all-\(index)", level: level == "one" ? "all" : level) == nil)
            }
            // Every node holds every key (N = 3 on three nodes), and says so.
            for id in ["n0", "n1", "n2"] {
                let document = try cluster.client(id).request("GET", "/cluster").json
                #expect(document["replication_factor"] as? Int == 3)
                #expect((document["members"] as? [[String: Any]])?.count == 3)
            }
            // An unknown level is refused, naming the problem.
            let bad = try writer.request("GET", "/get/x?consistency=most")
            #expect(bad.status == 400 && bad.text.contains("consistency"))
        }
    }

    @Test func aKilledNodeLeavesQuorumServingAndCatchesUpWhenRestarted() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            for id in ["n0", "n1", "n2"] { try await cluster.start(id) }
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2"])
            let n0 = try cluster.client("n0")
            let n1 = try cluster.client("n1")
            for index in 0..<50 { #expect(try n0.put("k\(index)", "v1", level: "all").status == 200) }
            try await cluster.kill("n2")
            // At once, before the failure detector has a say: quorum goes on through either survivor.
            for index in 0..<50 {
                #expect(try (index % 2 == 0 ? n0 : n1).put("k\(index)", "v2", level: "quorum").status == 200)
                #expect(try n0.put("new\(index)", "v2", level: "quorum").status == 200)
            }
            for index in 0..<50 { #expect(try n1.value("k\(index)", level: "quorum") == "v2") }
            // `all` cannot be met, and says how far it got.
            // (A failed write may still take effect on the replicas that answered: another key.)
            let all = try n0.put("other", "v3", level: "all")
            #expect(all.status == 503)
            let body = try all.json
            #expect(body["consistency"] as? String == "all")
            #expect(body["answered"] as? Int == 2 && body["required"] as? Int == 3)
            #expect((body["error"] as? String)?.contains("all") == true)
            #expect(try n1.get("k0", level: "all").status == 503)
            // The survivors see it go.
            try await eventually("n2 dead on n0 and n1") {
                try cluster.statuses(seenBy: "n0")["n2"] == "dead" && cluster.statuses(seenBy: "n1")["n2"] == "dead"
            }
            // Restarted, it catches up with what it missed and serves it, read at `one` through it.
            try await cluster.restart("n2")
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2"])
            // 50 overwritten, 50 new, and `other`, which the failed write left on the two that answered.
            try await eventually("n2 holds the 101 keys") { try cluster.stat("entries", of: "n2") == 101 }
            let n2 = try cluster.client("n2")
            var stale = ""
            do {
                try await eventually("n2 serves every write it missed") {
                    for index in 0..<50 {
                        for key in ["k\(index)", "new\(index)"] {
                            let value = try n2.value(key, level: "one")
                            guard value == "v2" else {
                                stale = "\(key) read \(value ?? "nothing")"
                                return false
                            }
                        }
                    }
                    return true
                }
            } catch {
                throw TestFailure("\(error); last: \(stale)\n\(cluster.member("n2").process!.log.suffix(3000))")
            }
        }
    }

    /// A node back from a crash answers quorum reads with the newest write at once (its own stale
    /// replica is outvoted), and the same check catches a coordinator that answers with the first
    /// reply instead (`INJECT_BUG=read-first-reply`).
    @Test func aRestartedNodeAnswersQuorumReadsWithTheNewestWriteAtOnce() async throws {
        let violations = try await restartedNodeReadsAtQuorum(injectedBug: nil)
        #expect(violations.isEmpty, "\(violations.prefix(5))")
    }

    /// How many stale reads the bug shows depends on timing: hinted handoff may bring n2 up to date
    /// before the reads reach it (seen once in four runs on a busy machine). The check must catch it
    /// in one of three runs; a correct coordinator shows none in any (the test above).
    @Test func theRestartCheckCatchesAnInjectedBug() async throws {
        for _ in 0..<3 {
            let violations = try await restartedNodeReadsAtQuorum(injectedBug: "read-first-reply")
            if !violations.isEmpty { return }
        }
        Issue.record("a coordinator answering with its own stale replica went unnoticed in three runs")
    }

    /// What is checked is where keys live and that no read fails while they move, not how fast a
    /// replica answers: on CI's two loaded cores debug nodes busy moving keys took longer than the
    /// 1 s default wait for replicas, so the wait is longer here.
    @Test func aFourthNodeTakesAQuarterWithoutAFailedReadAndALeaveLosesNothing() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory, common: ["REPLICA_TIMEOUT_MS": "5000"])
            for id in ["n0", "n1", "n2"] { try await cluster.start(id) }
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2"])
            let writer = try cluster.client("n0")
            var expected: [String: String] = [:]
            for index in 0..<600 {
                expected["key-\(index)"] = "value-\(index)"
                #expect(try writer.put("key-\(index)", "value-\(index)", level: "quorum").status == 200)
            }
            let reader = BackgroundReader(expected: expected)
            reader.readThrough(["n0", "n1", "n2"].map { cluster.member($0).httpPort })

            // Join: keys move until each node holds about three quarters of them (N = 3 of 4).
            try await cluster.start("n3")
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2", "n3"])
            reader.readThrough(["n0", "n1", "n2", "n3"].map { cluster.member($0).httpPort })
            var counts: [Int] = []
            do {
                try await eventually("keys spread over four nodes", timeout: .seconds(60)) {
                    counts = try ["n0", "n1", "n2", "n3"].map { try cluster.stat("entries", of: $0) }
                    return counts.reduce(0, +) == 1800 && counts.allSatisfy { (300...600).contains($0) }
                }
            } catch {
                let documents = try ["n0", "n1", "n2", "n3"].map {
                    try cluster.client($0).request("GET", "/stats").text
                }
                throw TestFailure("\(error): entries \(counts)\n\(documents.joined(separator: "\n"))")
            }
            let document = try cluster.client("n2").request("GET", "/cluster").json
            for member in document["members"] as? [[String: Any]] ?? [] {
                let share = member["ring_share"] as? Double ?? 0
                #expect((0.15...0.35).contains(share), "\(member["id"] ?? "?") owns \(share) of the ring")
            }

            // Graceful leave: n1 hands its keys over and exits; nothing is lost.
            reader.readThrough(["n0", "n2", "n3"].map { cluster.member($0).httpPort })
            let leave = try cluster.client("n1").request("POST", "/cluster/leave")
            #expect(leave.status == 202, "\(leave.text)")
            let status: Int32
            do {
                status = try await cluster.member("n1").process!.waitForExit(timeout: .seconds(60))
            } catch {
                try? cluster.member("n1").process!.log.write(
                    toFile: "/tmp/n1-leave.log", atomically: true, encoding: .utf8)
                throw error
            }
            #expect(status == 0)
            cluster.member("n1").process = nil
            try await eventually("n1 left on every remaining node") {
                try ["n0", "n2", "n3"].allSatisfy { try cluster.statuses(seenBy: $0)["n1"] == "left" }
            }
            try await eventually("keys back on three nodes", timeout: .seconds(60)) {
                try ["n0", "n2", "n3"].allSatisfy { try cluster.stat("entries", of: $0) == 600 }
            }
            let failures = await reader.stop()
            #expect(failures.isEmpty, "\(failures)")
            #expect(reader.readCount > 100)
            for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
                #expect(try cluster.client("n3").value(key, level: "quorum") == value)
            }
        }
    }

    @Test func aForgottenDeadMemberLeavesTheRing() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            for id in ["n0", "n1", "n2", "n3"] { try await cluster.start(id) }
            try await cluster.waitForMembership(alive: ["n0", "n1", "n2", "n3"])
            let n0 = try cluster.client("n0")
            do {
                for index in 0..<200 { #expect(try n0.put("k\(index)", "v", level: "quorum").status == 200) }
            } catch { throw TestFailure("\(error)\n" + cluster.member("n0").process!.log.suffix(5000)) }
            // A live member cannot be forgotten.
            let refused = try n0.request("DELETE", "/cluster/members/n3")
            #expect(refused.status == 409, "\(refused.text)")
            try await cluster.kill("n3")
            try await eventually("n3 dead on n0") { try cluster.statuses(seenBy: "n0")["n3"] == "dead" }
            // Dead, it still owns its share: nothing moved.
            #expect(try cluster.client("n0").request("GET", "/cluster").json["ring_members"] as? Int == 4)
            let forgotten = try n0.request("DELETE", "/cluster/members/n3")
            #expect(forgotten.status == 200, "\(forgotten.text)")
            try await eventually("n3 left the ring everywhere") {
                try ["n0", "n1", "n2"].allSatisfy { id in
                    let document = try cluster.client(id).request("GET", "/cluster").json
                    let members = document["members"] as? [[String: Any]] ?? []
                    let n3 = members.first { $0["id"] as? String == "n3" }
                    return document["ring_members"] as? Int == 3 && n3?["status"] as? String == "left"
                        && (n3?["ring_share"] as? Double ?? 1) == 0
                }
            }
            // Its keys are re-replicated on the three that remain.
            try await eventually("every key on the three", timeout: .seconds(60)) {
                try ["n0", "n1", "n2"].allSatisfy { try cluster.stat("entries", of: $0) == 200 }
            }
            for index in 0..<200 { #expect(try cluster.client("n1").value("k\(index)", level: "all") == "v") }
            #expect(try n0.request("DELETE", "/cluster/members/nobody").status == 404)
        }
    }

    /// A node given seeds it cannot reach is up (`/health`) but neither ready nor answering for keys:
    /// alone, it would answer from its own store as a cluster of one.
    @Test func aNodeThatReachesNoSeedIsNotReadyAndServesNoKeys() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            // A port nothing listens on: bound and closed again.
            let closed = try await cluster.start("probe")
            let unused = closed.peerPort
            try await cluster.kill("probe")
            let lonely = try await cluster.start("lonely", settings: ["SEEDS": "127.0.0.1:\(unused)"])
            try await waitUntilServing(port: lonely.httpPort)
            let client = try cluster.client("lonely")
            #expect(try client.request("GET", "/health").status == 200)
            let ready = try client.request("GET", "/ready")
            #expect(ready.status == 503 && ready.text.contains("joining"), "\(ready.text)")
            let read = try client.get("k")
            #expect(read.status == 503 && read.text.contains("not ready"), "\(read.text)")
            #expect(try client.put("k", "v").status == 503)
            let log = cluster.member("lonely").process!.log
            #expect(
                log.contains("peer not reachable yet; retrying with backoff") && log.contains("127.0.0.1:\(unused)"),
                "the log does not say the seed is unreachable")
        }
    }

    /// Bytes from peers are input: garbage, a frame declaring more than the limit, and an entry over
    /// the key limit each close their connection and are counted; the node serves on, data intact.
    @Test func badPeerBytesCloseTheConnectionAndNeverHurtTheNode() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            let node = try await cluster.start("solo")
            try await waitUntilServing(port: node.httpPort)
            let client = try cluster.client("solo")
            #expect(try client.put("kept", "value").status == 200)
            var oversizedKey: [UInt8] = [0, 0, 0, 0, 1, 2, 1, 0, 0x61, 1, 0, 0x62, 1]
            oversizedKey += withUnsafeBytes(of: UInt64(7).littleEndian, Array.init)
            oversizedKey += withUnsafeBytes(of: UInt32(2000).littleEndian, Array.init)
            oversizedKey += [UInt8](repeating: 0x6B, count: 2000)
            oversizedKey += [UInt8](repeating: 0, count: 12) + [1, 0, 0x6E, 1]
            oversizedKey += withUnsafeBytes(of: UInt32(1).littleEndian, Array.init) + [0x76, 0]
            let length = UInt32(oversizedKey.count - 4).littleEndian
            withUnsafeBytes(of: length) { for index in 0..<4 { oversizedKey[index] = $0[index] } }
            let inputs: [[UInt8]] = [
                Array("GET / HTTP/1.1\r\n\r\n".utf8) + [UInt8](repeating: 0xFF, count: 64),
                withUnsafeBytes(of: UInt32(64 << 20).littleEndian, Array.init) + [1, 1],
                oversizedKey,
            ]
            for input in inputs {
                let peer = try HTTPTestClient(port: node.peerPort)
                try peer.send(input)
                #expect(peer.readsEndOfStream(), "the node kept a connection that sent \(input.prefix(8))")
            }
            #expect(try client.request("GET", "/health").status == 200)
            #expect(try client.value("kept") == "value")
            let metrics = try client.request("GET", "/metrics").text
            let line = metrics.split(separator: "\n").first {
                $0.hasPrefix("cache_peer_connections_closed_invalid_total")
            }
            #expect(line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } == 3, "\(line ?? "no counter")")
        }
    }
}
