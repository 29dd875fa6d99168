import CacheCore
import Dispatch
import Foundation
import Synchronization
import Testing

@Suite(
    "Migration of a data directory from the single-node release", .realProcesses, .serialized,
    .timeLimit(.minutes(2)))
struct MigrationTests {
    /// `Fixtures/legacy-wal-v1`, written by the release before the one engine (see its README).
    private static var fixture: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/legacy-wal-v1")
    }

    private func expectFixtureContents(_ client: HTTPTestClient) throws {
        for index in [0, 1, 2, 5, 6, 7, 8, 9] {
            #expect(try client.request("GET", "/get/user:\(index)").json["value"] as? String == "alice-\(index)")
        }
        #expect(try client.request("GET", "/get/user:3").json["value"] as? String == "replaced")
        #expect(try client.request("GET", "/get/user:4").status == 404)
        #expect(try client.request("GET", "/get/old:gone").status == 404)
        #expect(try client.request("GET", "/get/big").json["value"] as? String == "small now")
        #expect(try client.request("GET", "/get/session:short").status == 404)
        let long = try client.request("GET", "/get/session:long").json
        #expect((long["ttl_remaining"] as? Int).map { $0 > 2_900_000_000 } == true)
        let unicode = try client.request("GET", "/get/\(KeyPath.encode(Array("é 😀/x".utf8)))").json
        #expect(unicode["value"] as? String == "unicode \" quote")
    }

    @Test func aDirectoryOfTheSingleNodeReleaseIsMigratedAtStart() async throws {
        try await withTemporaryDirectory { directory in
            let wal = directory.appendingPathComponent("wal")
            try FileManager.default.copyItem(at: Self.fixture, to: wal)
            let environment = ["WAL_DIR": wal.path, "PORT": "0", "WAL_SYNC": "always"]
            let (first, client) = try await NodeProcess.serving(environment: environment)
            try expectFixtureContents(client)
            let recovery = try #require(
                (try client.request("GET", "/stats").json["persistence"] as? [String: Any])?["recovery"]
                    as? [String: Any])
            #expect((recovery["migrated_records"] as? Int).map { $0 > 0 } == true)
            #expect(first.log.contains("migration done"))
            // The old files are gone: one versioned snapshot and the segment after it remain.
            let files = try FileManager.default.contentsOfDirectory(atPath: wal.path).sorted()
            #expect(files.filter { $0.hasSuffix(".snap") }.count == 1, "\(files)")
            #expect(!files.contains("snapshot-00000000000000000081.snap"), "\(files)")
            #expect(!files.contains("wal-00000000000000000082.log"), "\(files)")
            #expect(try client.request("PUT", "/put", json: #"{"key":"after","value":"migration"}"#).status == 200)
            first.send(SIGKILL)
            _ = try await first.waitForExit()

            // A second start reads versioned data only: nothing to migrate, nothing lost.
            let (second, again) = try await NodeProcess.serving(environment: environment)
            try expectFixtureContents(again)
            #expect(try again.request("GET", "/get/after").json["value"] as? String == "migration")
            let secondRecovery = try #require(
                (try again.request("GET", "/stats").json["persistence"] as? [String: Any])?["recovery"]
                    as? [String: Any])
            #expect(secondRecovery["migrated_records"] as? Int == 0)
            second.send(SIGTERM)
            #expect(try await second.waitForExit() == 0)
        }
    }
}
