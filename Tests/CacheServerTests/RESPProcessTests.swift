import Foundation
import Testing

/// A program from the machine's PATH (redis-cli, redis-benchmark, python3).
private func tool(_ name: String) throws -> String {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw TestFailure("\(name) is not installed (make test installs redis-tools and PyPI's redis)")
}

/// redis-cli's answer to one command (its non-interactive output: one line per item).
private func redisCLI(_ port: Int, _ arguments: String...) async throws -> String {
    try await redisCLI(port, arguments)
}

private func redisCLI(_ port: Int, _ arguments: [String]) async throws -> String {
    let run = try await runProgram(
        URL(fileURLWithPath: try tool("redis-cli")), ["-p", "\(port)", "--no-auth-warning"] + arguments)
    return (run.stdout + run.stderr).trimmingCharacters(in: .newlines)
}

@Suite("Redis clients against real nodes", .realProcesses, .serialized, .timeLimit(.minutes(5)))
struct RESPProcessTests {
    @Test("redis-cli and redis-benchmark against one node; a value crosses between RESP and HTTP")
    func oneNode() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory)
            let node = try await cluster.start("solo", settings: ["RESP_PORT": "0"])
            let port = try node.process!.respPort()
            let http = try cluster.client("solo")
            #expect(try await redisCLI(port, "PING") == "PONG")
            #expect(try await redisCLI(port, "SET", "greeting", "hello world") == "OK")
            #expect(try await redisCLI(port, "GET", "greeting") == "hello world")
            #expect(try http.value("greeting") == "hello world")
            #expect(try http.put("from-http", "over http").status == 200)
            #expect(try await redisCLI(port, "GET", "from-http") == "over http")
            #expect(try await redisCLI(port, "SET", "short", "v", "PX", "100000") == "OK")
            #expect(try await Int(redisCLI(port, "TTL", "short")).map { (99...100).contains($0) } == true)
            #expect(try await redisCLI(port, "MGET", "greeting", "nope", "from-http") == "hello world\n\nover http")
            #expect(try await redisCLI(port, "DEL", "greeting", "nope") == "1")
            #expect(try http.get("greeting").status == 404)
            #expect(try await redisCLI(port, "LPUSH", "l", "a").hasPrefix("ERR unknown command 'LPUSH'"))
            #expect(try await redisCLI(port, "INFO", "keyspace").contains("db0:keys="))
            #expect(try await redisCLI(port, "COMMAND", "COUNT") != "0")

            let benchmark = try await runProgram(
                URL(fileURLWithPath: try tool("redis-benchmark")),
                ["-p", "\(port)", "-n", "2000", "-c", "4", "-r", "100", "-t", "set,get", "-P", "4", "-q"])
            let output = benchmark.stdout + benchmark.stderr
            #expect(benchmark.status == 0, "\(output)")
            let lines = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" })
            #expect(
                lines.contains { $0.hasPrefix("SET:") && $0.contains("requests per second") }, "\(output)")
            #expect(
                lines.contains { $0.hasPrefix("GET:") && $0.contains("requests per second") }, "\(output)")
            #expect(try await Int(redisCLI(port, "DBSIZE")).map { $0 >= 50 } == true)
        }
    }

    @Test("with client tokens a connection must AUTH, and its token's role decides what it may run")
    func tokens() async throws {
        try await withTemporaryDirectory { directory in
            let tokens = directory.appendingPathComponent("tokens")
            try "read reader-token-0123456789\nwrite writer-token-0123456789\n".write(
                to: tokens, atomically: true, encoding: .utf8)
            let cluster = LocalCluster(directory: directory)
            let node = try await cluster.start("solo", settings: ["RESP_PORT": "0", "TOKENS_FILE": tokens.path])
            let port = try node.process!.respPort()
            #expect(try await redisCLI(port, "GET", "k").hasPrefix("NOAUTH"))
            #expect(try await redisCLI(port, "-a", "wrong", "GET", "k").contains("WRONGPASS"))
            #expect(try await redisCLI(port, "-a", "writer-token-0123456789", "SET", "k", "v") == "OK")
            #expect(try await redisCLI(port, "-a", "reader-token-0123456789", "GET", "k") == "v")
            #expect(try await redisCLI(port, "-a", "reader-token-0123456789", "SET", "k", "w").hasPrefix("NOPERM"))
            #expect(try await redisCLI(port, "-a", "writer-token-0123456789", "GET", "k") == "v")
        }
    }

    @Test("redis-py (RESP2 and RESP3) and raw sockets through each node of a 3-node cluster")
    func cluster() async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(directory: directory, common: ["RESP_PORT": "0"])
            let members = try await cluster.startAll(["n0", "n1", "n2"])
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/resp_clients.py").path
            let arguments = try members.map { "\(try $0.process!.respPort()),\($0.httpPort)" }
            let run = try await runProgram(URL(fileURLWithPath: try tool("python3")), [script] + arguments)
            #expect(run.status == 0 && run.stdout.hasSuffix("ok\n"), "\(run.stdout)\(run.stderr)")
        }
    }

    /// MGET and MSET are grouped by owner: the node coordinates all their keys in one step, so the
    /// messages for the keys one peer holds leave in one flush to it (a round trip per owner, not
    /// per key). With the connection on the node's loop and on another one. What is checked is the
    /// grouping, not the speed: 300 quorum writes of debug nodes on a loaded 2-core machine took
    /// longer than the 1 s default wait for replicas, so the wait is long here.
    @Test("MGET and MSET send each owner its keys together", arguments: ["1", "2"])
    func batchesAreGroupedByOwner(eventLoops: String) async throws {
        try await withTemporaryDirectory { directory in
            let cluster = LocalCluster(
                directory: directory,
                common: [
                    "RESP_PORT": "0", "REPLICATION_FACTOR": "2", "EVENT_LOOPS": eventLoops,
                    "REPLICA_TIMEOUT_MS": "20000",
                ])
            let members = try await cluster.startAll(["n0", "n1", "n2"])
            let port = try members[0].process!.respPort()
            let http = try cluster.client("n0")
            let keys = (0..<300).map { "batch-\($0)" }
            let frames = try metric("cache_peer_frames_sent_total", of: http) ?? 0
            let flushes = try metric("cache_peer_flushes_total", of: http) ?? 0
            let pairs = keys.flatMap { [$0, "v-\($0)"] }
            let written = try await redisCLI(port, ["MSET"] + pairs)
            #expect(written == "OK", "\(written.prefix(300))")
            let answer = try await redisCLI(port, ["MGET"] + keys)
            #expect(answer == keys.map { "v-\($0)" }.joined(separator: "\n"), "\(answer.prefix(300))")
            let framesSent = try (metric("cache_peer_frames_sent_total", of: http) ?? 0) - frames
            let flushed = try (metric("cache_peer_flushes_total", of: http) ?? 0) - flushes
            // Each key has a replica elsewhere: at least one frame per key for each command. Two
            // peers, a few rounds each (MSET reads versions first), and some gossip.
            #expect(framesSent >= 600, "\(framesSent) frames")
            #expect(flushed * 4 <= framesSent, "\(framesSent) frames in \(flushed) flushes")
        }
    }
}
