import CacheServer
import Foundation
import Logging
import NIOPosix
import Synchronization

/// A node served in-process on an ephemeral loopback port, with real sockets.
struct InProcessNode {
    let node: CacheNode
    let port: Int

    func client() throws -> HTTPTestClient { try HTTPTestClient(port: port) }
}

/// Starts a node configured by `settings` (configuration key names), runs `body` against it, and
/// shuts it down the way SIGTERM would.
func withInProcessNode<T>(
    _ settings: [String: String] = [:],
    _ body: (InProcessNode) async throws -> T
) async throws -> T {
    var flags = ["HOST": "127.0.0.1", "PORT": "0", "NODE_ID": "test-node", "EVENT_LOOPS": "1"]
    flags.merge(settings) { _, new in new }
    let configuration = try await NodeConfiguration.load(flags: flags, configFile: nil, environment: [:])
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let node = CacheNode(
        configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
        loop: group.next())
    do {
        let result = try await serve(node: node, group: group, body)
        try await group.shutdownGracefully()
        return result
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
}

/// Owns the server so that it is released before its event loop group shuts down.
private func serve<T>(
    node: CacheNode, group: MultiThreadedEventLoopGroup, _ body: (InProcessNode) async throws -> T
) async throws -> T {
    let server = try await HTTPServer.start(node: node, host: "127.0.0.1", port: 0, group: group)
    do {
        try await node.start(httpPort: server.port, peerPort: 0)
        node.transition(to: .serving)
        let result = try await body(InProcessNode(node: node, port: server.port))
        node.transition(to: .draining)
        try await server.shutdown()
        await node.stop()
        return result
    } catch {
        try? await server.shutdown()
        await node.stop()
        throw error
    }
}

/// A real `cache-node` process, started from the binary built beside the tests.
final class NodeProcess: Sendable {
    let process: Process
    private let output = OutputBuffer()

    private final class OutputBuffer: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    /// The `cache-node` binary: it is built into the same folder as the test bundle.
    static var binary: URL {
        let testBinary = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0])
        return testBinary.deletingLastPathComponent().appendingPathComponent("cache-node")
    }

    /// Starts the node (or `executable`, which starts it) with `arguments` and exactly `environment`
    /// (plus PATH).
    init(executable: URL = NodeProcess.binary, arguments: [String] = [], environment: [String: String] = [:]) throws {
        process = testProcess(executable, arguments, environment: environment)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [output] handle in
            let data = handle.availableData
            output.bytes.withLock { $0.append(contentsOf: data) }
        }
        try process.run()
    }

    /// Everything the process has written to stdout and stderr so far.
    var log: String { output.bytes.withLock { String(decoding: $0, as: UTF8.self) } }

    /// Waits for the "listening" log line and returns the port from it.
    func waitUntilListening(timeout: Duration = .seconds(30)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while true {
            // Read once more after the deadline, as `eventually` does.
            let late = ContinuousClock.now >= deadline
            if let port = listeningField("port") { return port }
            if !process.isRunning { throw TestFailure("cache-node exited early: \(log)") }
            if late { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("cache-node did not start listening: \(log)")
    }

    /// Waits for the "listening" log line and returns the HTTP and peer ports from it.
    func waitUntilListeningPorts(timeout: Duration = .seconds(30)) async throws -> (http: Int, peer: Int) {
        let http = try await waitUntilListening(timeout: timeout)
        guard let peer = listeningField("peer_port") else {
            throw TestFailure("no peer_port in the listening line: \(log)")
        }
        return (http, peer)
    }

    /// The Redis-protocol port the node logged in its "listening" line (it must have started).
    func respPort() throws -> Int {
        guard let port = listeningField("resp_port") else {
            throw TestFailure("no resp_port in the listening line: \(log)")
        }
        return port
    }

    /// A number from the node's "listening" log line, once it has logged one with that field.
    private func listeningField(_ name: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains(#""msg":"listening""#) {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let value = object[name] as? Int
            {
                return value
            }
        }
        return nil
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                process.interrupt()
                kill(process.processIdentifier, SIGKILL)
                throw TestFailure("cache-node did not exit in time: \(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Starts a node and waits until it serves (recovery done); returns it with a connected client.
    static func serving(
        arguments: [String] = [], environment: [String: String]
    ) async throws -> (NodeProcess, HTTPTestClient) {
        let node = try NodeProcess(arguments: arguments, environment: environment)
        let port = try await node.waitUntilListening()
        try await waitUntilServing(port: port)
        return (node, try HTTPTestClient(port: port))
    }

    /// Stops the process (SIGSTOP) and waits until the kernel reports it stopped: a signal takes a
    /// moment to land, and a request sent meanwhile would still be answered.
    func pause() async throws {
        send(SIGSTOP)
        let stat = "/proc/\(process.processIdentifier)/stat"
        try await eventually("process \(process.processIdentifier) stopped", timeout: .seconds(5)) {
            guard let text = try? String(contentsOfFile: stat, encoding: .utf8), let close = text.lastIndex(of: ")")
            else { return false }
            return text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T")
        }
    }

    /// Sends `signal` to the process.
    func send(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A fresh temporary directory, removed when `body` returns.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cache-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

/// Runs the program at `path` to completion; its exit status and its output (stdout and stderr).
func runToCompletion(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// A program's exit status and what it wrote.
struct ToolRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the program at `executable` to completion without blocking the test's cooperative threads.
func runProgram(
    _ executable: URL, _ arguments: [String], environment: [String: String] = [:]
) async throws
    -> ToolRun
{
    let process = testProcess(executable, arguments, environment: environment)
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    // Read on the pipes' own dispatch threads: a blocking read in the test's cooperative pool (two
    // threads on two cores) would stall every other task of the test run until the program exits.
    let collected = Mutex<(out: Data, err: Data)>((Data(), Data()))
    out.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        collected.withLock { $0.out.append(data) }
    }
    err.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        collected.withLock { $0.err.append(data) }
    }
    try process.run()
    while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    out.fileHandleForReading.readabilityHandler = nil
    err.fileHandleForReading.readabilityHandler = nil
    let rest = (out.fileHandleForReading.readDataToEndOfFile(), err.fileHandleForReading.readDataToEndOfFile())
    let (stdout, stderr) = collected.withLock { ($0.out + rest.0, $0.err + rest.1) }
    return ToolRun(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self))
}

/// A process for `executable` with `arguments` and exactly `environment`, plus the test's PATH and
/// no Swift backtraces (a crash is reported by its exit status, not by seconds of symbolication).
func testProcess(_ executable: URL, _ arguments: [String], environment: [String: String]) -> Process {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = environment
    env["PATH"] = ProcessInfo.processInfo.environment["PATH"]
    env["SWIFT_BACKTRACE"] = "enable=no"
    process.environment = env
    return process
}

/// The value of the unlabelled series `name` in a node's /metrics, or `nil` when it is not there.
func metric(_ name: String, of client: HTTPTestClient) throws -> Int? {
    let text = try client.request("GET", "/metrics").text
    let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
    return line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
}
