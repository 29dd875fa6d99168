import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Requests on connections of other event loops cross to the node's loop and back in batches
/// (`LoopCrossing`): every answer reaches its own connection, in its request order, under load.
@Suite("Requests across event loops", .realProcesses, .timeLimit(.minutes(3)))
struct LoopCrossingTests {
    @Test func pipelinedRequestsOnEveryLoopGetTheirOwnAnswersInOrder() async throws {
        let (node, client) = try await NodeProcess.serving(
            environment: ["PORT": "0", "PEER_PORT": "0", "EVENT_LOOPS": "4"])
        defer { node.send(SIGKILL) }
        // Sixteen connections (spread over four loops: three of four cross), each pipelining a put
        // and a get of its own keys, all sent before any answer is read.
        let connections = try (0..<16).map { _ in try HTTPTestClient(port: client.port) }
        let rounds = 40
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask {
                    var bytes: [UInt8] = []
                    for round in 0..<rounds {
                        let body = #"{"key":"c\#(index)-\#(round)","value":"v\#(index)-\#(round)"}"#
                        bytes += Array(
                            "PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
                        bytes += Array("GET /get/c\(index)-\(round) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                    }
                    try connection.send(bytes)
                    for round in 0..<rounds {
                        let put = try connection.readResponse()
                        #expect(put.status == 200, "connection \(index), put \(round)")
                        let get = try connection.readResponse()
                        #expect(get.status == 200, "connection \(index), get \(round)")
                        #expect(try get.json["value"] as? String == "v\(index)-\(round)")
                    }
                }
            }
            try await group.waitForAll()
        }
        // The node counted every request as coordinated once.
        let stats = try HTTPTestClient(port: client.port).request("GET", "/stats").json
        let ops = try #require(stats["ops"] as? [String: Int])
        #expect(ops["put"] == 16 * rounds && ops["get"] == 16 * rounds)
    }

    /// A Redis-protocol pipeline puts many requests of one connection in flight at once (reads and
    /// writes of different keys run in parallel), so crossings carry batches: each answer must still
    /// be its own request's. (Answering a batch in the wrong order fails this test; the HTTP one
    /// above, one request in flight per connection, rarely batches.)
    @Test func batchesOfPipelinedCommandsAreAnsweredInOrder() async throws {
        let (node, _) = try await NodeProcess.serving(
            environment: ["PORT": "0", "PEER_PORT": "0", "RESP_PORT": "0", "EVENT_LOOPS": "4"])
        defer { node.send(SIGKILL) }
        let port = try node.respPort()
        let keys = 64
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let connection = try HTTPTestClient(port: port)
                    func command(_ words: String...) -> String {
                        "*\(words.count)\r\n" + words.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
                    }
                    let names = (0..<keys).map { "r\(index)-\($0)" }
                    let sets = names.map { command("SET", $0, "value-\($0)") }.joined()
                    try connection.send(Array(sets.utf8))
                    let stored = try connection.readStream(until: "\r\n", count: keys)
                    #expect(stored == String(repeating: "+OK\r\n", count: keys), "connection \(index)")
                    let gets = names.map { command("GET", $0) }.joined()
                    try connection.send(Array(gets.utf8))
                    let values = try connection.readStream(until: "\r\n", count: 2 * keys)
                    let expected = names.map { "$\("value-\($0)".utf8.count)\r\nvalue-\($0)\r\n" }.joined()
                    #expect(values == expected, "connection \(index): \(values.prefix(200))")
                }
            }
            try await group.waitForAll()
        }
    }
}
