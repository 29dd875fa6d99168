import CacheServer
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The JSON log lines a node wrote, parsed.
private func logLines(_ node: NodeProcess) -> [[String: Any]] {
    node.log.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// What an operator sees of a node: help, exit statuses, start-up lines, errors, metrics.
@Suite("What an operator sees", .realProcesses, .timeLimit(.minutes(3)))
struct OperatorViewTests {
    @Test func helpGroupsEverySettingWithItsMeaningAndDefaultAndVersionIsThere() async throws {
        let help = try NodeProcess(arguments: ["--help"])
        #expect(try await help.waitForExit() == 0)
        for group in ["NETWORK:", "STORAGE AND LIMITS:", "CLUSTER:", "LOGGING:"] {
            #expect(help.log.contains(group), "\(group) in \(help.log)")
        }
        let words = help.log.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(words.contains("Memory in MiB before eviction (0: no limit). Default: 1024. Env: MAX_MEMORY_MB."))
        #expect(help.log.contains("--seeds"))
        let version = try NodeProcess(arguments: ["--version"])
        #expect(try await version.waitForExit() == 0)
        #expect(version.log.hasPrefix("cache-node 0."))
    }

    /// One rule: a bad value exits 2 whichever way it was written, and so does a mistyped flag.
    @Test(arguments: [
        ["--max-memory-mb", "-5"], ["--max-memory-mb=-5"], ["--max-memory-mbb", "5"], ["--port"],
    ])
    func everyConfigurationMistakeExitsTwoWithOneLine(arguments: [String]) async throws {
        let node = try NodeProcess(arguments: arguments)
        #expect(try await node.waitForExit() == 2, "\(node.log)")
        #expect(node.log.hasPrefix("cache-node: "), "\(node.log)")
    }

    @Test func aPortInUseSaysWhichAddressAndSettingAndExitsOne() async throws {
        let (first, _) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        let port = try await first.waitUntilListening()
        let second = try NodeProcess(environment: ["PORT": "\(port)", "PEER_PORT": "0"])
        #expect(try await second.waitForExit() == 1)
        let expected = "cannot listen on 127.0.0.1:\(port) (PORT): address already in use"
        #expect(second.log.contains("cache-node: " + expected), "\(second.log)")
        let logged = logLines(second).first { $0["msg"] as? String == "cannot listen" }
        #expect(logged?["address"] as? String == "127.0.0.1:\(port)")
        #expect(logged?["setting"] as? String == "PORT")
        #expect(logged?["level"] as? String == "critical")
    }

    @Test func theEffectiveConfigurationIsLoggedOnceWithWhereEachValueCameFrom() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("node.conf")
            try "TTL_DEFAULT=77\n".write(to: file, atomically: true, encoding: .utf8)
            let node = try NodeProcess(
                arguments: ["--config", file.path, "--max-size", "9"],
                environment: ["PORT": "0", "PEER_PORT": "0", "REPLICATION_FACTOR": "2"])
            _ = try await node.waitUntilListening()
            let lines = logLines(node).filter { $0["msg"] as? String == "configuration" }
            #expect(lines.count == 1)
            let settings = lines.first?["settings"] as? [String: [String: String]] ?? [:]
            #expect(settings["MAX_SIZE"] == ["value": "9", "source": "flag"])
            #expect(settings["TTL_DEFAULT"] == ["value": "77", "source": "file"])
            #expect(settings["REPLICATION_FACTOR"] == ["value": "2", "source": "environment"])
            #expect(settings["CONSISTENCY"] == ["value": "quorum", "source": "default"])
            // Numbers in the log are JSON numbers, with their unit in the name.
            let listening = logLines(node).first { $0["msg"] as? String == "listening" }
            #expect(listening?["port"] is Int && listening?["peer_port"] is Int)
            node.send(SIGTERM)
            _ = try await node.waitForExit()
        }
    }

    @Test func metricsHaveHelpForEveryFamilyNoIdleSeriesAndOneOrder() async throws {
        let (a, clientA) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        let (b, clientB) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        defer {
            a.send(SIGKILL)
            b.send(SIGKILL)
        }
        let idle = try clientA.request("GET", "/metrics").text
        let lines = idle.split(separator: "\n").map(String.init)
        let helped = Set(lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        let typed = Set(lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] })
        #expect(helped == typed && !helped.isEmpty)
        for sample in lines where !sample.hasPrefix("#") {
            let name = String(sample.prefix { $0 != "{" && $0 != " " })
            let histogramPart = ["_bucket", "_sum", "_count"].first {
                name.hasSuffix($0) && typed.contains(Substring(name.dropLast($0.count)))
            }
            let family = histogramPart.map { String(name.dropLast($0.count)) } ?? name
            #expect(typed.contains(Substring(family)), "\(sample) has no # TYPE")
        }
        // Only what was used has a series: the health checks that waited for the node, not a row of
        // zeros for every route and status.
        let requestSeries = lines.filter { $0.hasPrefix("cache_http_requests_total{") }
        #expect(!requestSeries.isEmpty && requestSeries.allSatisfy { !$0.hasSuffix(" 0") }, "\(requestSeries)")
        #expect(!idle.contains(#"route="put""#))
        for family in [
            "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
            "process_cpu_seconds_total", "cache_cluster_members", "cache_handoff_backlog", "cache_ready",
        ] {
            #expect(idle.contains("\n" + family), "\(family) missing")
        }
        _ = try clientA.request("GET", "/get/absent")
        let used = try clientA.request("GET", "/metrics").text
        #expect(used.contains(#"cache_http_requests_total{route="get",status="404"} 1"#))
        #expect(!used.contains(#"status="200"} 0"#))
        // Two processes list their families in the same order.
        func families(_ text: String) -> [String] {
            text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map(String.init)
        }
        #expect(families(try clientB.request("GET", "/metrics").text) == families(idle))
    }

    @Test func theREADMEsTableListsEverySetting() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for key in NodeConfiguration.keys where key.group != .testing {
            #expect(readme.contains("| `\(key.name)` |"), "README.md's configuration table lacks \(key.name)")
        }
    }

    @Test func aNodeOnAChosenPortIsNamedAfterThePortItGot() async throws {
        let (node, client) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        defer { node.send(SIGKILL) }
        let port = try await node.waitUntilListening()
        #expect(try client.request("GET", "/stats").json["node_id"] as? String == "127.0.0.1:\(port)")
    }

    @Test func aNodeWithALogExportsItsSizeFailureStateAndSyncLatency() async throws {
        try await withTemporaryDirectory { directory in
            let (node, client) = try await NodeProcess.serving(
                environment: ["PORT": "0", "PEER_PORT": "0", "WAL_DIR": directory.path, "WAL_SYNC": "always"])
            defer { node.send(SIGKILL) }
            #expect(try client.request("PUT", "/put", json: #"{"key":"k","value":"v"}"#).status == 200)
            let metrics = try client.request("GET", "/metrics").text
            #expect(metrics.contains("\ncache_wal_disk_failed 0\n"))
            #expect(metrics.contains("\ncache_wal_bytes "))
            let syncs = metrics.split(separator: "\n").first { $0.hasPrefix("cache_wal_sync_duration_seconds_count ") }
            #expect(syncs.flatMap { Int($0.split(separator: " ")[1]) } ?? 0 >= 1, "\(syncs ?? "no sync count")")
        }
    }

    @Test func statsRoundsUptimeForReaders() async throws {
        let (node, client) = try await NodeProcess.serving(environment: ["PORT": "0", "PEER_PORT": "0"])
        defer { node.send(SIGKILL) }
        try await Task.sleep(for: .milliseconds(50))
        let text = try client.request("GET", "/stats").text
        let uptime = try #require(text.firstMatch(of: #/"uptime_seconds":([0-9.]+)/#)).output.1
        #expect(uptime.split(separator: ".").last.map { $0.count <= 3 } ?? true, "\(uptime)")
    }

    @Test func theAccessLogHasALinePerRequestWithItsStatusAndTime() async throws {
        let (node, client) = try await NodeProcess.serving(
            environment: ["PORT": "0", "PEER_PORT": "0", "ACCESS_LOG": "true"])
        defer { node.send(SIGKILL) }
        _ = try client.request("GET", "/get/absent%20key")
        try await eventually("the access log line") {
            logLines(node).contains { $0["msg"] as? String == "request" && $0["route"] as? String == "get" }
        }
        let line = try #require(
            logLines(node).first { $0["msg"] as? String == "request" && $0["route"] as? String == "get" })
        #expect(line["status"] as? Int == 404)
        #expect(line["method"] as? String == "GET" && line["uri"] as? String == "/get/absent%20key")
        #expect(line["duration_ms"] is Double || line["duration_ms"] is Int)
    }
}
