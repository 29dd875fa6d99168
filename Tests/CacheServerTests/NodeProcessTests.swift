import Foundation
import Testing

@Suite("cache-node process", .timeLimit(.minutes(2)))
struct NodeProcessTests {
    @Test func startsFromEnvironmentServesAndStopsGracefullyOnSIGTERM() async throws {
        let node = try NodeProcess(environment: ["PORT": "0", "NODE_ID": "env-node", "HOST": "127.0.0.1"])
        let port = try await node.waitUntilListening()
        let client = try HTTPTestClient(port: port)
        #expect(try client.request("GET", "/health").json["node_id"] as? String == "env-node")
        #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#).status == 200)
        #expect(try client.request("GET", "/get/k").status == 200)

        node.send(SIGTERM)
        #expect(try await node.waitForExit() == 0)
        #expect(node.log.contains(#""state":"draining""#))
        #expect(node.log.contains(#""msg":"stopped""#))
        // Every log line is a JSON object.
        for line in node.log.split(separator: "\n") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "\(line)")
        }
    }

    @Test func stopsGracefullyOnSIGINT() async throws {
        let node = try NodeProcess(arguments: ["--port", "0"])
        _ = try await node.waitUntilListening()
        node.send(SIGINT)
        #expect(try await node.waitForExit() == 0)
    }

    @Test func flagsOverrideTheFileWhichOverridesTheEnvironment() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("node.conf")
            try "# test configuration\nNODE_ID=from-file\nTTL_DEFAULT=77\nPORT=0\n".write(
                to: file, atomically: true, encoding: .utf8)
            let node = try NodeProcess(
                arguments: ["--config", file.path, "--node-id", "from-flag"],
                environment: ["NODE_ID": "from-env", "TTL_DEFAULT": "5", "MAX_SIZE": "3", "PORT": "1"]
            )
            let port = try await node.waitUntilListening()
            let client = try HTTPTestClient(port: port)
            #expect(try client.request("GET", "/health").json["node_id"] as? String == "from-flag")
            _ = try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#)
            #expect(try client.request("GET", "/get/k").json["ttl_remaining"] as? Int == 77)
            let limits = try #require(try client.request("GET", "/stats").json["limits"] as? [String: Any])
            #expect(limits["max_entries"] as? Int == 3)
            node.send(SIGTERM)
            #expect(try await node.waitForExit() == 0)
        }
    }

    @Test(arguments: [
        (["PORT": "eighty"], [String](), "PORT"),
        (["PORT": "70000"], [], "PORT"),
        (["MAX_MEMORY_MB": "-1"], [], "MAX_MEMORY_MB"),
        (["TTL_DEFAULT": "1.5"], [], "TTL_DEFAULT"),
        (["GOSSIP_INTERVAL": "soon"], [], "GOSSIP_INTERVAL"),
        (["SEEDS": "nohost"], [], "SEEDS"),
        (["LOG_LEVEL": "loud"], [], "LOG_LEVEL"),
        ([:], ["--replication-factor", "0"], "REPLICATION_FACTOR"),
        ([:], ["--node-id", "has space"], "NODE_ID"),
    ])
    func invalidValuesStopTheNodeNamingTheKey(
        environment: [String: String], arguments: [String], key: String
    ) async throws {
        let node = try NodeProcess(arguments: arguments, environment: environment)
        #expect(try await node.waitForExit() == 2)
        #expect(node.log.contains("invalid configuration: \(key):"), "\(node.log)")
    }

    @Test func unknownKeyInConfigFileStopsTheNode() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("node.conf")
            try "PORT=0\nMAX_MEMORY=12\n".write(to: file, atomically: true, encoding: .utf8)
            let node = try NodeProcess(arguments: ["--config", file.path])
            #expect(try await node.waitForExit() == 2)
            #expect(node.log.contains("MAX_MEMORY: unknown configuration key"), "\(node.log)")
        }
    }

    @Test func jemallocIsTheAllocatorOfTheNode() async throws {
        let node = try NodeProcess(environment: ["PORT": "0"])
        let port = try await node.waitUntilListening()
        let client = try HTTPTestClient(port: port)
        func allocated() throws -> Int {
            let bytes = try #require(try client.request("GET", "/stats").json["bytes"] as? [String: Any])
            return try #require(bytes["jemalloc_allocated"] as? Int)
        }
        let before = try allocated()
        let value = String(repeating: "x", count: 512 * 1024)
        for index in 0..<64 {
            #expect(
                try client.request("PUT", "/put", json: #"{"key":"big\#(index)","value":"\#(value)"}"#).status == 200)
        }
        // 32 MiB of values now live in the store; jemalloc must have seen them being allocated.
        let after = try allocated()
        #expect(after - before >= 30 << 20, "before \(before), after \(after)")
        node.send(SIGTERM)
        #expect(try await node.waitForExit() == 0)
    }

    /// As root on a host any socket option is allowed; a container without NET_ADMIN or a plain user
    /// is refused some, and a connection whose options fail is closed at once.
    @Test(.enabled(if: getuid() == 0, "switching to an unprivileged user needs root"))
    func servesWhenRunByAnUnprivilegedUser() async throws {
        let node = try NodeProcess(
            executable: URL(fileURLWithPath: "/usr/bin/setpriv"),
            arguments: [
                "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", NodeProcess.binary.path,
            ],
            environment: ["PORT": "0"])
        let port = try await node.waitUntilListening()
        try await waitUntilServing(port: port)
        let client = try HTTPTestClient(port: port)
        #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#).status == 200)
        #expect(try client.request("GET", "/get/k").json["value"] as? String == "v")
        node.send(SIGTERM)
        #expect(try await node.waitForExit() == 0)
    }

    @Test func writesRotatedLogFile() async throws {
        try await withTemporaryDirectory { directory in
            let logFile = directory.appendingPathComponent("node.log").path
            let node = try NodeProcess(environment: ["PORT": "0", "LOG_FILE": logFile, "LOG_LEVEL": "debug"])
            _ = try await node.waitUntilListening()
            node.send(SIGTERM)
            #expect(try await node.waitForExit() == 0)
            let contents = try String(contentsOfFile: logFile, encoding: .utf8)
            #expect(contents.contains(#""msg":"listening""#))
            #expect(contents.contains(#""msg":"stopped""#))
        }
    }
}
