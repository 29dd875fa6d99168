import CacheClient
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A tool built beside the tests (`cachectl`, `cache-bench`), run to completion.
private func runTool(
    _ name: String, _ arguments: [String], environment: [String: String] = [:]
) async throws
    -> ToolRun
{
    try await runProgram(
        NodeProcess.binary.deletingLastPathComponent().appendingPathComponent(name), arguments,
        environment: environment)
}

@Suite("cachectl and cache-bench against real nodes", .realProcesses, .serialized, .timeLimit(.minutes(5)))
struct ToolProcessTests {
    @Test func cachectlReadsWritesOperatesAndExitsWithStatusesScriptsCanUse() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            let started = try await cluster.startAll(["n0", "n1"])
            let (n0, n1) = (started[0], started[1])
            let node = ["--node", "127.0.0.1:\(n0.httpPort)"]

            var run = try await runTool("cachectl", ["put"] + node + ["greeting", "hello, \"world\"", "--ttl", "60"])
            #expect(run.status == 0, "\(run.stderr)")
            run = try await runTool("cachectl", ["get", "greeting", "--node", "127.0.0.1:\(n1.httpPort)"])
            #expect(run.status == 0 && run.stdout == "hello, \"world\"\n", "\(run)")
            run = try await runTool("cachectl", ["get", "absent"] + node)
            #expect(run.status == 1 && run.stdout.isEmpty && run.stderr == "cachectl: absent: not found\n")
            run = try await runTool("cachectl", ["del", "greeting"] + node)
            #expect(run.status == 0)
            run = try await runTool("cachectl", ["del", "greeting"] + node)
            #expect(run.status == 1)
            // The node list also comes from the environment.
            run = try await runTool(
                "cachectl", ["put", "from-env", "x"], environment: ["CACHE_NODES": "127.0.0.1:\(n1.httpPort)"])
            #expect(run.status == 0)

            run = try await runTool("cachectl", ["status"] + node)
            #expect(run.status == 0)
            let rows = run.stdout.split(separator: "\n").filter { $0.hasPrefix("ALIVE") }
            #expect(rows.count == 2 && rows[0].contains("n0") && rows[1].contains("n1"), "\(run.stdout)")
            #expect(run.stdout.contains("RING SHARE") && run.stdout.contains("ENTRIES"))

            run = try await runTool("cachectl", ["stats", "--json"] + node)
            let stats = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
            #expect(stats?["node_id"] as? String == "n0")
            run = try await runTool("cachectl", ["stats"] + node)
            #expect(run.status == 0 && run.stdout.contains("entries"))

            run = try await runTool("cachectl", ["plan", "--add", "n9@127.0.0.1:1"] + node)
            #expect(run.status == 0 && run.stdout.contains("moved_share"), "\(run)")

            // Errors: one line each, and a status per kind.
            run = try await runTool("cachectl", ["put", String(repeating: "k", count: 1025), "v"] + node)
            #expect(run.status == 2 && run.stderr.split(separator: "\n").count == 1, "\(run)")
            #expect(run.stderr.contains("1025 bytes"))
            run = try await runTool("cachectl", ["forget", "nobody"] + node)
            #expect(run.status == 2 && run.stderr.contains("no member nobody"), "\(run)")
            run = try await runTool("cachectl", ["forget", "n1"] + node)
            #expect(run.status == 2 && run.stderr.contains("only a dead member can be forgotten"), "\(run)")
            run = try await runTool("cachectl", ["get", "k", "--node", "127.0.0.1:1", "--timeout", "1"])
            #expect(run.status == 3 && run.stderr.split(separator: "\n").count == 1, "\(run)")
            #expect(run.stderr.contains("127.0.0.1:1"))
            run = try await runTool("cachectl", ["get"])
            #expect(run.status == 64)

            run = try await runTool("cachectl", ["leave", "n1"] + node)
            #expect(run.status == 0, "\(run)")
            try await eventually("n1 left") { (try? cluster.statuses(seenBy: "n0")["n1"]) == "left" }
        }
    }

    @Test func cacheBenchKeepsRunningWhileANodeIsKilledAndReportsEveryFigure() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            let n0 = try await cluster.startAll(["n0", "n1", "n2"])[0]
            let bench = Task {
                try await runTool(
                    "cache-bench",
                    [
                        "--nodes", "127.0.0.1:\(n0.httpPort)", "--duration", "4", "--warmup", "0.5", "--preload",
                        "--keys", "500", "--ratio", "8:1:1", "--distribution", "zipfian", "--value-size", "10-200",
                        "--consistency", "quorum", "--concurrency", "4", "--json", "--progress",
                    ])
            }
            // Kill once the measured load is running (reads coordinated beyond the preload's writes).
            try await eventually("cache-bench's load reaches the cluster", timeout: .seconds(30)) {
                let ops = try cluster.client("n0").request("GET", "/stats").json["ops"] as? [String: Any]
                return (ops?["get"] as? Int ?? 0) > 200
            }
            try await cluster.kill("n2")
            let run = try await bench.value
            #expect(run.status == 0, "\(run.stderr)")
            let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
            let operations = report["operations"] as? [String: [String: Any]] ?? [:]
            let total = operations["total"] ?? [:]
            #expect(total["count"] as? Int ?? 0 > 100, "\(run.stdout)")
            #expect(total["errors"] as? Int == 0 && total["timeouts"] as? Int == 0, "\(run.stdout)")
            for name in ["get", "put", "delete"] {
                let latency = operations[name]?["latency_ms"] as? [String: Double] ?? [:]
                #expect(Set(latency.keys) == ["p50", "p90", "p99", "p99_9", "max", "mean"])
                #expect((latency["p50"] ?? 0) > 0 && (latency["p50"] ?? 0) <= (latency["max"] ?? 0))
            }
            #expect((operations["get"]?["hits"] as? Int ?? 0) > 0)
            let timeline = report["timeline"] as? [[String: Any]] ?? []
            #expect(timeline.count >= 3)
            let client = report["client"] as? [String: Int] ?? [:]
            #expect(client["nodes_marked_down"] ?? 0 >= 1, "\(client) \(run.stderr)")
        }
    }

    @Test func cacheBenchOpenLoopHoldsItsRate() async throws {
        let (node, _) = try await NodeProcess.serving(environment: ["PORT": "0", "HOST": "127.0.0.1"])
        let port = try await node.waitUntilListening()
        let run = try await runTool(
            "cache-bench",
            [
                "--nodes", "127.0.0.1:\(port)", "--rate", "200", "--duration", "2", "--warmup", "0.5",
                "--concurrency", "16", "--json",
            ])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        let total = (report["operations"] as? [String: [String: Any]])?["total"] ?? [:]
        // 200 requests per second for 2 s: 400 due, give or take the edges.
        #expect((380...420).contains(total["count"] as? Int ?? 0), "\(total)")
        #expect((report["settings"] as? [String: Any])?["mode"] as? String == "open")
        let bad = try await runTool("cache-bench", ["--ratio", "nine"])
        #expect(bad.status == 64 && bad.stderr.contains("--ratio"))
    }

    @Test func theREADMEsClientExampleRunsAsWritten() async throws {
        // The README shows the example's source verbatim.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let source = try String(
            contentsOf: root.appendingPathComponent("Sources/cache-client-example/main.swift"), encoding: .utf8)
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains(source), "README.md must show Sources/cache-client-example/main.swift as it is")

        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            let started = try await cluster.startAll(["n0", "n1"])
            let (n0, n1) = (started[0], started[1])
            let run = try await runTool(
                "cache-client-example", ["127.0.0.1:\(n0.httpPort),127.0.0.1:\(n1.httpPort)"])
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            #expect(
                Array(lines.prefix(4)) == [
                    "alice", #"[(key: "a", value: "1"), (key: "b", value: "2")]"#, "true", "absent",
                ])
            #expect(
                lines.dropFirst(4).sorted() == [
                    "n0 alive 127.0.0.1:\(n0.httpPort)", "n1 alive 127.0.0.1:\(n1.httpPort)",
                ])
        }
    }

    /// Against a node with client tokens: the client, cachectl and cache-bench send theirs, and
    /// without one (or with a read token, for a write) each fails with the node's own words.
    @Test func theClientAndTheToolsSendTheirToken() async throws {
        try await withTemporaryDirectory { directory in
            let token = "tools-write-token-0123456789"
            let reader = "tools-read-token-0123456789"
            let tokens = directory.appendingPathComponent("tokens")
            try Data("write \(token)\nread \(reader)\n".utf8).write(to: tokens)
            let (node, client) = try await NodeProcess.serving(
                environment: ["PORT": "0", "PEER_PORT": "0", "TOKENS_FILE": tokens.path])
            let address = "127.0.0.1:\(client.port)"
            _ = try await withCacheClient(CacheClientConfig(nodes: [address], token: token)) { cache in
                try await cache.put("with-token", "yes")
                #expect(try await cache.get("with-token") == "yes")
            }
            _ = try await withCacheClient(CacheClientConfig(nodes: [address], token: reader)) { cache in
                await #expect(throws: CacheClientError.self) { try await cache.put("read-only", "no") }
            }
            var run = try await runTool("cachectl", ["get", "with-token", "--node", address])
            #expect(run.status == 2 && run.stderr.contains("401"), "\(run)")
            run = try await runTool(
                "cachectl", ["get", "with-token", "--node", address], environment: ["CACHE_TOKEN": token])
            #expect(run.status == 0 && run.stdout == "yes\n", "\(run)")
            run = try await runTool(
                "cache-bench",
                ["--nodes", address, "--duration", "0.5", "--warmup", "0", "--keys", "10", "--token", token, "--json"])
            #expect(run.status == 0, "\(run)")
            node.send(SIGTERM)
            _ = try await node.waitForExit()
        }
    }

    /// HTTPS on the client port: the client and cachectl trust the node's CA and talk to it; plain
    /// HTTP and a client trusting another CA do not get through; SIGHUP takes a renewed certificate.
    @Test func clientsTalkToANodeOverTLSAndARenewedCertificateIsTakenOnSIGHUP() async throws {
        try await withTemporaryDirectory { directory in
            func file(_ name: String) -> String { directory.appendingPathComponent(name).path }
            func openssl(_ arguments: [String]) throws {
                let run = try runToCompletion("/usr/bin/openssl", arguments)
                guard run.status == 0 else { throw TestFailure("openssl \(arguments.first ?? ""): \(run.output)") }
            }
            try Data("subjectAltName=IP:127.0.0.1\n".utf8).write(to: URL(fileURLWithPath: file("san")))
            for authority in ["ca1", "ca2"] {
                try openssl([
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    file("\(authority).key"), "-out", file("\(authority).pem"), "-days", "2", "-subj",
                    "/CN=\(authority)",
                ])
                try openssl([
                    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    file("\(authority)-node.key"), "-out", file("\(authority)-node.csr"), "-subj", "/CN=127.0.0.1",
                ])
                try openssl([
                    "x509", "-req", "-in", file("\(authority)-node.csr"), "-CA", file("\(authority).pem"), "-CAkey",
                    file("\(authority).key"), "-CAcreateserial", "-out", file("\(authority)-node.pem"), "-days", "2",
                    "-extfile", file("san"),
                ])
            }
            try FileManager.default.copyItem(atPath: file("ca1-node.pem"), toPath: file("node.pem"))
            try FileManager.default.copyItem(atPath: file("ca1-node.key"), toPath: file("node.key"))
            let node = try NodeProcess(
                environment: [
                    "PORT": "0", "PEER_PORT": "0", "TLS_CERT_FILE": file("node.pem"), "TLS_KEY_FILE": file("node.key"),
                ])
            let port = try await node.waitUntilListening()
            let address = "127.0.0.1:\(port)"
            func works(trusting authority: String) async -> Bool {
                do {
                    let config = CacheClientConfig(
                        nodes: [address], timeout: .seconds(3), tls: .init(caFile: file("\(authority).pem")))
                    return try await withCacheClient(config) { cache in
                        try await cache.put("over-tls", authority)
                        return try await cache.get("over-tls") == authority
                    }
                } catch {
                    return false
                }
            }
            try await eventually("a put and a get over TLS") { await works(trusting: "ca1") }
            #expect(await !works(trusting: "ca2"), "a client trusting another CA got through")
            let plain = try HTTPTestClient(port: port)
            #expect((try? plain.request("GET", "/health"))?.status != 200, "plain HTTP was answered on the TLS port")
            let run = try await runTool(
                "cachectl", ["get", "over-tls", "--node", address, "--tls-ca", file("ca1.pem")])
            #expect(run.status == 0 && run.stdout == "ca1\n", "\(run)")
            // The certificate is renewed, now from another CA: SIGHUP, and new connections get it.
            try FileManager.default.removeItem(atPath: file("node.pem"))
            try FileManager.default.removeItem(atPath: file("node.key"))
            try FileManager.default.copyItem(atPath: file("ca2-node.pem"), toPath: file("node.pem"))
            try FileManager.default.copyItem(atPath: file("ca2-node.key"), toPath: file("node.key"))
            node.send(SIGHUP)
            try await eventually("the renewed certificate served") { await works(trusting: "ca2") }
            #expect(await !works(trusting: "ca1"))
            #expect(node.log.contains("reloaded the TLS certificate"))
            node.send(SIGTERM)
            _ = try await node.waitForExit()
        }
    }
}
