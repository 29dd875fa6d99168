import CacheCore
import Dispatch
import Foundation
import Synchronization
import Testing

/// What a client knows about one key it alone writes: the last answered state, and the state a
/// write in flight at the crash would leave (which may or may not have happened).
private struct KeyHistory: Sendable {
    var acknowledged: String?  // nil: absent
    var inFlight: String??  // .some(nil): a delete in flight
}

/// What one round of writers did before the kill.
private struct RoundOutcome {
    var histories: [String: KeyHistory]
    /// Writes answered (and so promised durable) in the round.
    var acknowledged: Int
    /// Writers whose request was cut off by the kill: writes in flight at that moment.
    var cutOff: Int
}

/// Drives `clients` writers, each over keys of its own, until the node dies; returns their histories.
private func writeUntilKilled(
    port: Int, clients: Int, keysPerClient: Int, valueBytes: Int, round: Int,
    histories: [String: KeyHistory]
) async -> RoundOutcome {
    let shared = Mutex(histories)
    let acknowledgedWrites = Atomic<Int>(0)
    let cutOff = Atomic<Int>(0)
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                var random = SplitMix64(seed: UInt64(round * 100 + client))
                guard let connection = try? HTTPTestClient(port: port) else { return }
                let padding = String(repeating: "p", count: valueBytes)
                for operation in 0..<100_000 {
                    let key = "c\(client)-k\(random.below(keysPerClient))"
                    let isDelete = random.below(5) == 0
                    let value = "r\(round)-o\(operation)-\(padding)"
                    shared.withLock { $0[key, default: KeyHistory()].inFlight = .some(isDelete ? nil : value) }
                    let response =
                        isDelete
                        ? try? connection.request("DELETE", "/delete/\(key)")
                        : try? connection.request("PUT", "/put", json: #"{"key":"\#(key)","value":"\#(value)"}"#)
                    guard let response else {
                        // The node died: the write stays in flight.
                        cutOff.add(1, ordering: .relaxed)
                        return
                    }
                    let acknowledged = response.status == 200 || (isDelete && response.status == 404)
                    guard acknowledged else { return }
                    acknowledgedWrites.add(1, ordering: .relaxed)
                    shared.withLock {
                        $0[key]!.acknowledged = isDelete ? nil : value
                        $0[key]!.inFlight = nil
                    }
                }
            }.start()
        }
        group.notify(queue: .global()) { done.resume() }
    }
    return RoundOutcome(
        histories: shared.withLock { $0 }, acknowledged: acknowledgedWrites.load(ordering: .relaxed),
        cutOff: cutOff.load(ordering: .relaxed))
}

/// Checks every key against its history; returns the histories with the observed state as acknowledged.
private func verify(client: HTTPTestClient, histories: [String: KeyHistory], round: Int) throws -> [String: KeyHistory]
{
    var settled = histories
    for (key, history) in histories.sorted(by: { $0.key < $1.key }) {
        let response = try client.request("GET", "/get/\(key)")
        let observed: String? = response.status == 200 ? try response.json["value"] as? String : nil
        #expect(response.status == 200 || response.status == 404)
        var allowed: [String?] = [history.acknowledged]
        if let inFlight = history.inFlight { allowed.append(inFlight) }
        #expect(
            allowed.contains(observed),
            "round \(round), \(key): found \(observed?.prefix(24) ?? "nothing"), acknowledged \(history.acknowledged?.prefix(24) ?? "nothing")"
        )
        settled[key] = KeyHistory(acknowledged: observed, inFlight: nil)
    }
    return settled
}

@Suite("Durability with real processes", .realProcesses, .serialized, .timeLimit(.minutes(3)))
struct DurabilityProcessTests {
    private func crashRounds(rounds: Int, environment: [String: String], valueBytes: Int) async throws -> Int {
        try await withTemporaryDirectory { directory in
            var histories: [String: KeyHistory] = [:]
            var compactions = 0
            var environment = environment
            environment["WAL_DIR"] = directory.path
            environment["PORT"] = "0"
            environment["WAL_SYNC"] = "always"
            for round in 0..<rounds {
                let (node, client) = try await NodeProcess.serving(environment: environment)
                let port = client.port
                histories = try verify(client: client, histories: histories, round: round)
                // Kill at a moment the seed of the round picks, while four clients write.
                var random = SplitMix64(seed: UInt64(round))
                let delay = 150 + random.below(400)
                let killer = Task { () -> Int in
                    // From the first write the node coordinated: a loaded machine may take longer
                    // than the delay to start the writers, and a round must see some.
                    try await eventually("the writers reached the node", timeout: .seconds(20)) {
                        let ops = try? HTTPTestClient(port: port).request("GET", "/stats").json["ops"] as? [String: Any]
                        return (ops?["put"] as? Int ?? 0) + (ops?["delete"] as? Int ?? 0) > 0
                    }
                    try await Task.sleep(for: .milliseconds(delay))
                    let stats = try? HTTPTestClient(port: port).request("GET", "/stats").json
                    let persistence = stats?["persistence"] as? [String: Any]
                    node.send(SIGKILL)
                    return persistence?["compactions"] as? Int ?? 0
                }
                let outcome = await writeUntilKilled(
                    port: port, clients: 4, keysPerClient: 25, valueBytes: valueBytes, round: round,
                    histories: histories)
                histories = outcome.histories
                // Every round must prove something: writes acknowledged before the kill, and writes
                // cut off by it.
                #expect(outcome.acknowledged > 0, "round \(round): no write was acknowledged before the kill")
                #expect(outcome.cutOff > 0, "round \(round): no write was in flight at the kill")
                compactions = max(compactions, try await killer.value)
                _ = try await node.waitForExit()
            }
            let (node, client) = try await NodeProcess.serving(environment: environment)
            _ = try verify(client: client, histories: histories, round: rounds)
            node.send(SIGTERM)
            #expect(try await node.waitForExit() == 0)
            return compactions
        }
    }

    @Test func killedNodeKeepsEveryAcknowledgedWrite() async throws {
        _ = try await crashRounds(rounds: 8, environment: [:], valueBytes: 16)
    }

    @Test func killedNodeKeepsEveryAcknowledgedWriteWhileCompacting() async throws {
        let compactions = try await crashRounds(
            rounds: 8, environment: ["WAL_COMPACT_MIN_MB": "1", "WAL_COMPACT_RATIO": "1"], valueBytes: 8192)
        #expect(compactions > 0, "no compaction ran during the rounds")
    }

    @Test func entriesThatExpireWhileDownAreNotServedAfterRestart() async throws {
        try await withTemporaryDirectory { directory in
            let environment = ["WAL_DIR": directory.path, "PORT": "0", "WAL_SYNC": "always"]
            let (first, client) = try await NodeProcess.serving(environment: environment)
            #expect(try client.request("PUT", "/put", json: #"{"key":"short","value":"v","ttl":1}"#).status == 200)
            #expect(try client.request("PUT", "/put", json: #"{"key":"long","value":"v","ttl":3600}"#).status == 200)
            first.send(SIGKILL)
            _ = try await first.waitForExit()
            try await Task.sleep(for: .milliseconds(1200))
            let (second, again) = try await NodeProcess.serving(environment: environment)
            #expect(try again.request("GET", "/get/short").status == 404)
            let long = try again.request("GET", "/get/long")
            #expect(long.status == 200)
            #expect((try long.json["ttl_remaining"] as? Int).map { $0 <= 3600 && $0 > 3500 } == true)
            let stats = try again.request("GET", "/stats").json
            let recovery = try #require((stats["persistence"] as? [String: Any])?["recovery"] as? [String: Any])
            #expect(recovery["expired_dropped"] as? Int == 1)
            second.send(SIGTERM)
            #expect(try await second.waitForExit() == 0)
        }
    }

    @Test func tornTailIsTruncatedAndReported() async throws {
        try await withTemporaryDirectory { directory in
            let environment = ["WAL_DIR": directory.path, "PORT": "0", "WAL_SYNC": "always"]
            let (first, client) = try await NodeProcess.serving(environment: environment)
            for index in 0..<10 {
                #expect(
                    try client.request("PUT", "/put", json: #"{"key":"k\#(index)","value":"v\#(index)"}"#).status == 200
                )
            }
            first.send(SIGKILL)
            _ = try await first.waitForExit()
            // Tear the last record as a crash in the middle of a write would.
            let segment = try #require(
                try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("wal-") }
                    .sorted().last)
            let path = directory.appendingPathComponent(segment).path
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(truncate(path, off_t(size - 5)) == 0)

            let (second, again) = try await NodeProcess.serving(environment: environment)
            for index in 0..<9 { #expect(try again.request("GET", "/get/k\(index)").status == 200) }
            #expect(try again.request("GET", "/get/k9").status == 404)
            let stats = try again.request("GET", "/stats").json
            let recovery = try #require((stats["persistence"] as? [String: Any])?["recovery"] as? [String: Any])
            #expect((recovery["dropped_bytes"] as? Int).map { $0 > 0 } == true)
            #expect((recovery["problems"] as? [String])?.count == 1)
            #expect(second.log.contains("recovery dropped data"))
            second.send(SIGTERM)
            #expect(try await second.waitForExit() == 0)
        }
    }
}

/// Waits until `/health` says the node serves (recovery done).
func waitUntilServing(port: Int, timeout: Duration = .seconds(30)) async throws {
    try await eventually("the node on port \(port) to be healthy", timeout: timeout) {
        (try? HTTPTestClient(port: port).request("GET", "/health"))?.status == 200
    }
}
