import Foundation
import Testing

/// Runs a command and returns its exit status.
@discardableResult
private func run(_ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

@Suite(
    "Full disk", .realProcesses, .serialized, .timeLimit(.minutes(2)),
    .enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
struct DiskFullTests {
    @Test func fullDiskRefusesWritesKeepsReadsAndLosesNothingAcknowledged() async throws {
        try await withTemporaryDirectory { directory in
            // A 256 KiB file system of our own: the log fills it for real.
            #expect(try run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", directory.path]) == 0)
            defer { _ = try? run(["umount", "-l", directory.path]) }
            let environment = ["WAL_DIR": directory.path, "PORT": "0", "WAL_SYNC": "always"]
            let (node, client) = try await NodeProcess.serving(environment: environment)

            let value = String(repeating: "v", count: 16 * 1024)
            var acknowledged: [String] = []
            var refusal: HTTPTestResponse?
            for index in 0..<64 {
                let response = try client.request("PUT", "/put", json: #"{"key":"k\#(index)","value":"\#(value)"}"#)
                if response.status == 200 {
                    acknowledged.append("k\(index)")
                } else {
                    refusal = response
                    break
                }
            }
            let refused = try #require(refusal, "the disk never filled")
            #expect(refused.status == 503)
            #expect(try (refused.json["error"] as? String)?.contains("No space left on device") == true)
            #expect(acknowledged.count > 5)

            // Degraded: reads still served, writes refused with a clear error.
            let health = try client.request("GET", "/health")
            #expect(health.status == 200)
            #expect(try health.json["status"] as? String == "degraded")
            for key in acknowledged { #expect(try client.request("GET", "/get/\(key)").status == 200) }
            let put = try client.request("PUT", "/put", json: #"{"key":"later","value":"x"}"#)
            #expect(put.status == 503)
            #expect(try client.request("DELETE", "/delete/k0").status == 503)
            #expect(try client.request("GET", "/get/k0").status == 200)

            // Room again: writes resume once the node has cut the log back to its last whole write.
            #expect(try run(["mount", "-o", "remount,size=8m", directory.path]) == 0)
            var resumed = false
            for _ in 0..<50 where !resumed {
                try await Task.sleep(for: .milliseconds(100))
                resumed = try client.request("PUT", "/put", json: #"{"key":"after","value":"x"}"#).status == 200
            }
            #expect(resumed)
            #expect(try client.request("GET", "/health").json["status"] as? String == "ok")

            // Nothing acknowledged was lost.
            node.send(SIGKILL)
            _ = try await node.waitForExit()
            let (restarted, again) = try await NodeProcess.serving(environment: environment)
            for key in acknowledged + ["after"] {
                #expect(try again.request("GET", "/get/\(key)").status == 200, "\(key) was acknowledged")
            }
            #expect(try again.request("GET", "/get/later").status == 404)
            restarted.send(SIGTERM)
            #expect(try await restarted.waitForExit() == 0)
        }
    }
}
