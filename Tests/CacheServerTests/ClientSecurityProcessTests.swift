import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

private let readToken = "read-token-0123456789abcdef"
private let writeToken = "write-token-0123456789abcdef"
private let adminToken = "admin-token-0123456789abcdef"

private func bearer(_ token: String) -> [String: String] { ["Authorization": "Bearer \(token)"] }

/// Clients prove who they are with tokens, and a node survives clients that abuse its connections:
/// too many, too slow, or never reading their answers. Real processes, real sockets.
@Suite("Client security with real processes", .realProcesses, .serialized, .timeLimit(.minutes(5)))
struct ClientSecurityProcessTests {
    @Test func tokensGrantRolesAndProbesStayOpen() async throws {
        try await withTemporaryDirectory { directory in
            let tokens = directory.appendingPathComponent("tokens")
            try Data("# role token\nread \(readToken)\nwrite \(writeToken)\nadmin \(adminToken)\n".utf8).write(
                to: tokens)
            let (node, client) = try await NodeProcess.serving(
                environment: ["PORT": "0", "PEER_PORT": "0", "TOKENS_FILE": tokens.path])
            let put = Array(#"{"key":"k","value":"v"}"#.utf8)
            func status(_ method: String, _ target: String, _ token: String?, body: [UInt8]? = nil) throws -> Int {
                let connection = try HTTPTestClient(port: client.port)
                return try connection.request(method, target, body: body, headers: token.map(bearer) ?? [:]).status
            }
            // No token, or one the node does not know: 401 with a JSON body and a challenge.
            let anonymous = try HTTPTestClient(port: client.port).request("GET", "/get/k")
            #expect(anonymous.status == 401)
            #expect(anonymous.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            #expect((try anonymous.json["error"] as? String)?.contains("token") == true)
            #expect(try status("GET", "/get/k", "not-a-token-of-this-node") == 401)
            #expect(try status("PUT", "/put", nil, body: put) == 401)
            // Each role, and what it may not do: 403.
            #expect(try status("GET", "/get/k", readToken) == 404)
            #expect(try status("GET", "/stats", readToken) == 200)
            #expect(try status("PUT", "/put", readToken, body: put) == 403)
            #expect(try status("PUT", "/put", writeToken, body: put) == 200)
            #expect(try status("GET", "/get/k", writeToken) == 200)
            #expect(try status("DELETE", "/delete/k", writeToken) == 200)
            #expect(try status("POST", "/cluster/leave", writeToken) == 403)
            #expect(try status("POST", "/cluster/forget/nobody", adminToken) == 404)
            // Probes and (by default) metrics need none.
            for target in ["/health", "/ready", "/metrics"] {
                #expect(try status("GET", target, nil) == 200, "\(target)")
            }
            // SIGHUP rereads the file: a token taken out stops working, a new one starts.
            let newToken = "fresh-token-0123456789abcdef"
            try Data("write \(newToken)\n".utf8).write(to: tokens)
            node.send(SIGHUP)
            try await eventually("the new token accepted") { try status("GET", "/get/k", newToken) == 404 }
            #expect(try status("GET", "/get/k", writeToken) == 401)
            // Tokens never reach the log.
            for token in [readToken, writeToken, adminToken, newToken] { #expect(!node.log.contains(token)) }
            node.send(SIGTERM)
            _ = try await node.waitForExit()
            let (guarded, guardedClient) = try await NodeProcess.serving(
                environment: [
                    "PORT": "0", "PEER_PORT": "0", "TOKENS_FILE": tokens.path, "METRICS_REQUIRE_TOKEN": "true",
                ])
            #expect(try HTTPTestClient(port: guardedClient.port).request("GET", "/metrics").status == 401)
            #expect(
                try HTTPTestClient(port: guardedClient.port).request("GET", "/metrics", headers: bearer(newToken))
                    .status == 200)
            guarded.send(SIGTERM)
            _ = try await guarded.waitForExit()
        }
    }

    /// Past MAX_CONNECTIONS a new connection is closed at once; a place freed is taken again.
    @Test func connectionsPastTheLimitAreRefused() async throws {
        let (node, client) = try await NodeProcess.serving(
            environment: ["PORT": "0", "PEER_PORT": "0", "MAX_CONNECTIONS": "4"])
        var open: [HTTPTestClient] = []
        // `client` holds one place already.
        for _ in 0..<3 {
            let connection = try HTTPTestClient(port: client.port)
            #expect(try connection.request("GET", "/health").status == 200)
            open.append(connection)
        }
        let refused = try HTTPTestClient(port: client.port)
        #expect(refused.readsEndOfStream(), "a connection past the limit was kept")
        open.removeLast()
        try await eventually("a freed place taken again") {
            guard let connection = try? HTTPTestClient(port: client.port) else { return false }
            return (try? connection.request("GET", "/health").status) == 200
        }
        let metrics = try open[0].request("GET", "/metrics").text
        #expect(metrics.contains("cache_http_connections_refused_total "), "\(metrics.prefix(200))")
        node.send(SIGTERM)
        _ = try await node.waitForExit()
    }

    /// A client sending a byte at a time, a body sent too slowly, and a connection that sends
    /// nothing are all cut off; the node answers others meanwhile.
    @Test func slowClientsAreCutOff() async throws {
        let (node, client) = try await NodeProcess.serving(
            environment: [
                "PORT": "0", "PEER_PORT": "0", "REQUEST_READ_TIMEOUT_MS": "600", "IDLE_TIMEOUT_MS": "800",
            ])
        let started = ContinuousClock.now
        // Slowloris: a head that never ends, a byte every 100 ms.
        let slow = try HTTPTestClient(port: client.port)
        let head = Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
        var answer: HTTPTestResponse?
        for byte in head + [UInt8](repeating: 0x61, count: 40) {
            guard (try? slow.send([byte])) != nil else { break }
            try await Task.sleep(for: .milliseconds(100))
            if ContinuousClock.now - started > .seconds(2) { break }
        }
        answer = try? slow.readResponse()
        #expect(answer?.status == 408, "no 408 for a head sent a byte at a time")
        #expect(ContinuousClock.now - started < .seconds(3))
        // A body that stops halfway.
        let halfBody = try HTTPTestClient(port: client.port)
        try halfBody.send(Array("PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":".utf8))
        #expect(try halfBody.readResponse().status == 408)
        #expect(halfBody.readsEndOfStream())
        // Nothing at all, and a keep-alive connection left idle after its answer.
        let silent = try HTTPTestClient(port: client.port)
        #expect(silent.readsEndOfStream())
        let idle = try HTTPTestClient(port: client.port)
        #expect(try idle.request("GET", "/health").status == 200)
        #expect(idle.readsEndOfStream())
        // Meanwhile the node answered (over a fresh connection: the first has been idle too long).
        #expect(try HTTPTestClient(port: client.port).request("GET", "/health").status == 200)
        _ = client
        node.send(SIGTERM)
        _ = try await node.waitForExit()
    }

    /// A client that pipelines requests and never reads the answers is read under back-pressure:
    /// the node stops reading once the answers back up, so the client's own sends stall long before
    /// it has written all it meant to, and the node still answers others.
    @Test func aPipelinedFloodIsReadUnderBackPressure() async throws {
        let (node, client) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        let flood = try HTTPTestClient(port: client.port)
        flood.setSendTimeout(seconds: 2)
        let request = Array("GET /get/some-key HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let batch = Array((0..<1000).map { _ in request }.joined())
        var sent = 0
        let limit = 256 << 20
        while sent < limit, (try? flood.send(batch)) != nil { sent += batch.count }
        #expect(sent < limit, "the node read \(sent >> 20) MiB of requests whose answers nobody read")
        #expect(try client.request("GET", "/health").status == 200)
        let rss = try String(contentsOfFile: "/proc/\(node.process.processIdentifier)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        let kilobytes = rss.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        #expect(kilobytes < 512 << 10, "the node grew to \(kilobytes >> 10) MiB")
        node.send(SIGTERM)
        _ = try await node.waitForExit()
    }
}
