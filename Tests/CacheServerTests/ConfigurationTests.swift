import CacheCore
import Foundation
import Testing

@testable import CacheServer

@Suite("Configuration")
struct ConfigurationTests {
    @Test func defaults() async throws {
        let configuration = try await NodeConfiguration.load(flags: [:], configFile: nil, environment: [:])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8000)
        #expect(configuration.nodeID == "127.0.0.1:8000")
        #expect(configuration.walDirectory == nil)
        #expect(configuration.maximumMemoryBytes == 1024 << 20)
        #expect(configuration.maximumEntries == nil)
        #expect(configuration.replicationFactor == 3)
        #expect(configuration.defaultTTLSeconds == 0)
        #expect(configuration.gossipInterval == .seconds(1))
        #expect(configuration.heartbeatInterval == .milliseconds(500))
        #expect(configuration.failureTimeout == .seconds(5))
        #expect(configuration.replicaTimeout == .seconds(1))
        #expect(configuration.seeds == [])
        #expect(configuration.eventLoops == max(1, ProcessInfo.processInfo.activeProcessorCount - 1))
    }

    @Test func everyKeyIsReadFromTheEnvironment() async throws {
        let environment = [
            "NODE_ID": "n1", "HOST": "0.0.0.0", "PORT": "9001", "WAL_DIR": "/tmp/wal", "MAX_MEMORY_MB": "0",
            "MAX_SIZE": "500", "REPLICATION_FACTOR": "2", "TTL_DEFAULT": "30", "GOSSIP_INTERVAL": "250ms",
            "HEARTBEAT_INTERVAL": "2s", "FAILURE_TIMEOUT": "1m", "SEEDS": "10.0.0.1:9000, node-b:9001",
            "LOG_LEVEL": "DEBUG", "EVENT_LOOPS": "3", "ALLOW_UNAUTHENTICATED_PEERS": "yes",
            "MAX_CLOCK_OFFSET_MS": "250", "REPLICA_TIMEOUT_MS": "2500",
            "MAX_CONNECTIONS": "64", "REQUEST_READ_TIMEOUT_MS": "1500", "IDLE_TIMEOUT_MS": "9000",
            "METRICS_REQUIRE_TOKEN": "true",
        ]
        let configuration = try await NodeConfiguration.load(flags: [:], configFile: nil, environment: environment)
        #expect(configuration.nodeID == "n1")
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 9001)
        #expect(configuration.walDirectory == "/tmp/wal")
        #expect(configuration.maximumMemoryBytes == nil)
        #expect(configuration.maximumEntries == 500)
        #expect(configuration.replicationFactor == 2)
        #expect(configuration.defaultTTLSeconds == 30)
        #expect(configuration.gossipInterval == .milliseconds(250))
        #expect(configuration.heartbeatInterval == .seconds(2))
        #expect(configuration.failureTimeout == .seconds(60))
        #expect(configuration.seeds.map(\.description) == ["10.0.0.1:9000", "node-b:9001"])
        #expect(configuration.logLevel == .debug)
        #expect(configuration.eventLoops == 3)
        #expect(configuration.allowUnauthenticatedPeers)
        #expect(configuration.maximumClockOffset == .milliseconds(250))
        #expect(configuration.replicaTimeout == .milliseconds(2500))
        #expect(configuration.clusterConfiguration.requestTimeout == .milliseconds(2500))
        #expect(configuration.maximumConnections == 64)
        #expect(configuration.requestReadTimeout == .milliseconds(1500))
        #expect(configuration.idleTimeout == .seconds(9))
        #expect(configuration.metricsRequireToken)
    }

    @Test func unrelatedEnvironmentVariablesAreIgnored() async throws {
        let configuration = try await NodeConfiguration.load(
            flags: [:], configFile: nil, environment: ["PATH": "/bin", "HOME": "/root", "port": "1"])
        #expect(configuration.port == 8000)
    }

    @Test func precedenceIsFlagThenFileThenEnvironment() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("node.conf")
            try "PORT = 7000\n\n# comment\nTTL_DEFAULT=9\n".write(to: file, atomically: true, encoding: .utf8)
            let configuration = try await NodeConfiguration.load(
                flags: ["PORT": "7001"], configFile: file.path,
                environment: ["PORT": "7002", "TTL_DEFAULT": "1", "MAX_SIZE": "4"])
            #expect(configuration.port == 7001)
            #expect(configuration.defaultTTLSeconds == 9)
            #expect(configuration.maximumEntries == 4)
        }
    }

    @Test func missingConfigFileIsAnError() async throws {
        await #expect(throws: NodeConfiguration.Error.self) {
            try await NodeConfiguration.load(flags: [:], configFile: "/nonexistent/node.conf", environment: [:])
        }
    }

    @Test func lineThatIsNotKeyValueIsAnError() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("node.conf")
            try "PORT=1\njust words\n".write(to: file, atomically: true, encoding: .utf8)
            let error = await #expect(throws: NodeConfiguration.Error.self) {
                try await NodeConfiguration.load(flags: [:], configFile: file.path, environment: [:])
            }
            #expect(error?.problem.contains("line 2") == true)
        }
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("3s", .seconds(3)), ("2m", .seconds(120)), ("750", .milliseconds(750)),
    ])
    func durations(text: String, expected: Duration) {
        #expect(NodeConfiguration.parseDuration(text) == expected)
    }
}
