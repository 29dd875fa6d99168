import CacheCore
import Foundation
import Testing

@testable import CacheServer

@Suite("Log sink")
struct LogSinkTests {
    @Test func rotatesBySizeKeepingBackups() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("node.log").path
            let sink = try LogSink(standardOutput: false, filePath: path, maximumBytes: 1000, backups: 2)
            let line = Array((String(repeating: "x", count: 99) + "\n").utf8)
            for _ in 0..<35 { sink.write(line: line) }
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            #expect(files == ["node.log", "node.log.1", "node.log.2"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 500)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")).count == 1000)
        }
    }
}
