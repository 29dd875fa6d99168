import CacheCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The real `cache-node` processes of a campaign: started, killed, paused, wiped and restarted by
/// the fault schedule, each on ports fixed for the whole run and a data directory of its own.
///
/// Only the campaign's main task touches it; clients get the immutable `Endpoints`.
final class NodeProcesses {
    /// What a node needs to start again.
    struct Node {
        let id: String
        let httpPort: Int
        let peerPort: Int
        let directory: URL
        let environment: [String: String]
        var process: Process?
        var paused = false
    }

    private(set) var nodes: [Node] = []
    private let binary: URL
    /// A node built without jemalloc, which libfaketime can run (`--skew-node-binary`).
    var skewBinary: URL?
    static let faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    private let logs: URL
    private let network: ChaosNetwork?
    /// Each node's spans of unavailability (down or paused), for the checkers.
    private(set) var timeline: Timeline

    init(
        count: Int, binary: URL, directory: URL, settings: [String: String], network: ChaosNetwork?, clock: HarnessClock
    ) throws {
        self.binary = binary
        self.network = network
        logs = directory.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        timeline = Timeline(count: count, clock: clock)
        let ports = try (0..<(2 * count)).map { _ in try Self.freePort() }
        let hosts = (0..<count).map { network?.address($0) ?? "127.0.0.1" }
        for index in 0..<count {
            let httpPort = network == nil ? ports[2 * index] : 8000
            let peerPort = network == nil ? ports[2 * index + 1] : 9000
            let peerPorts = (0..<count).map { network == nil ? ports[2 * $0 + 1] : 9000 }
            var environment = settings
            environment["NODE_ID"] = "n\(index)"
            environment["HOST"] = hosts[index]
            environment["PORT"] = "\(httpPort)"
            environment["PEER_PORT"] = "\(peerPort)"
            environment["WAL_DIR"] = directory.appendingPathComponent("n\(index)").path
            // Every node is given every other as a seed, as run-cluster.sh and compose do.
            environment["SEEDS"] = (0..<count).filter { $0 != index }.map { "\(hosts[$0]):\(peerPorts[$0])" }
                .joined(separator: ",")
            nodes.append(
                Node(
                    id: "n\(index)", httpPort: httpPort, peerPort: peerPort,
                    directory: directory.appendingPathComponent("n\(index)"), environment: environment))
        }
    }

    /// Where clients reach each node.
    var endpoints: Endpoints {
        Endpoints(
            urls: nodes.indices.map { index in
                "http://\(network?.address(index) ?? "127.0.0.1"):\(nodes[index].httpPort)"
            })
    }

    var isUp: [Bool] { nodes.map { $0.process?.isRunning == true && !$0.paused } }

    /// The file libfaketime reads node `index`'s offset from, for `jump`.
    private func jumpFile(_ index: Int) -> URL { logs.appendingPathComponent("\(nodes[index].id).faketime") }

    /// Leaps node `index`'s clocks, wall and monotonic, `milliseconds` ahead of where they were
    /// (it must have been started `jumpable`); libfaketime reads the file again within a second.
    func jump(_ index: Int, milliseconds: Int) throws {
        try Self.faketimeOffset(milliseconds).write(to: jumpFile(index), atomically: true, encoding: .utf8)
    }

    /// An offset as libfaketime reads it (`FAKETIME`, or its timestamp file): "+2.000", "-0.300".
    private static func faketimeOffset(_ milliseconds: Int) -> String {
        let magnitude = abs(milliseconds)
        return "\(milliseconds < 0 ? "-" : "+")\(magnitude / 1000).\(String(format: "%03d", magnitude % 1000))"
    }

    /// Starts node `index`; with `skew`, on a wall clock that many milliseconds off (the node reads
    /// the wall clock once, at start: its whole run is skewed; its monotonic clock is left alone);
    /// `jumpable`, under libfaketime with both clocks as they are, until `jump` moves them.
    func start(_ index: Int, skew milliseconds: Int? = nil, jumpable: Bool = false) throws {
        precondition(nodes[index].process == nil, "node \(index) is already running")
        var binary = self.binary
        var environment = nodes[index].environment
        if jumpable, let skewBinary {
            binary = skewBinary
            try Self.faketimeOffset(0).write(to: jumpFile(index), atomically: true, encoding: .utf8)
            environment["LD_PRELOAD"] = Self.faketime
            environment["FAKETIME_TIMESTAMP_FILE"] = jumpFile(index).path
            environment["FAKETIME_CACHE_DURATION"] = "1"
        } else if let milliseconds, let skewBinary {
            binary = skewBinary
            environment["LD_PRELOAD"] = Self.faketime
            environment["FAKETIME"] = Self.faketimeOffset(milliseconds)
            environment["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        }
        let log = logs.appendingPathComponent("\(nodes[index].id).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        let process = Process()
        if let network {
            let (executable, arguments) = network.command(in: index, [binary.path])
            process.executableURL = executable
            process.arguments = arguments
        } else {
            process.executableURL = binary
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, node in node }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
        nodes[index].process = process
        nodes[index].paused = false
        timeline.up(index)
    }

    /// SIGKILL: the process dies at once, its data directory stays as it was.
    func kill(_ index: Int) {
        guard let process = nodes[index].process else { return }
        if nodes[index].paused { _ = Glibc.kill(process.processIdentifier, SIGCONT) }
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // Down from when it is gone for sure (a paused node has been down since its pause).
        timeline.down(index)
        nodes[index].process = nil
        nodes[index].paused = false
    }

    /// SIGTERM: the node drains and exits by itself; SIGKILL if it is still there after `grace`.
    /// Returns whether it exited in time.
    @discardableResult
    func terminate(_ index: Int, grace: Duration = .seconds(10)) async -> Bool {
        guard let process = nodes[index].process else { return true }
        if nodes[index].paused { _ = Glibc.kill(process.processIdentifier, SIGCONT) }
        _ = Glibc.kill(process.processIdentifier, SIGTERM)
        let exited = await waitForExit(index, limit: grace)
        if !exited { kill(index) }
        return exited
    }

    /// Waits up to `limit` for node `index`'s process to exit by itself (after a leave, a drain),
    /// and marks it down once it has. Returns whether it did.
    func waitForExit(_ index: Int, limit: Duration) async -> Bool {
        guard let process = nodes[index].process else { return true }
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return false }
        process.waitUntilExit()
        timeline.down(index)
        nodes[index].process = nil
        nodes[index].paused = false
        return true
    }

    /// Node `index`'s name (`NODE_ID`).
    func id(_ index: Int) -> String { nodes[index].id }

    /// Deletes what a stopped node's data directory holds: the node comes back as a new disk would.
    func wipe(_ index: Int) throws {
        precondition(nodes[index].process == nil, "wiping a running node")
        let directory = nodes[index].directory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// Gives every node a file system of its own, `megabytes` large (a tmpfs), so that a disk can
    /// be filled for real. Needs root; the campaign runs in a mount namespace of its own (that of
    /// `ip netns exec`), and `unmountDisks` undoes it besides.
    func mountDisks(megabytes: Int) throws {
        for node in nodes {
            try FileManager.default.createDirectory(at: node.directory, withIntermediateDirectories: true)
            try Self.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", node.directory.path])
            mounted.append(node.directory)
        }
    }

    func unmountDisks() {
        for directory in mounted { try? Self.run("/usr/bin/umount", ["-l", directory.path]) }
        mounted = []
    }

    private var mounted: [URL] = []

    /// Fills node `index`'s disk to the last byte with a file of the harness's own.
    func fillDisk(_ index: Int) {
        let filler = nodes[index].directory.appendingPathComponent("chaos-filler")
        _ = FileManager.default.createFile(atPath: filler.path, contents: nil)
        guard let handle = try? FileHandle(forWritingTo: filler) else { return }
        let chunk = Data(count: 64 * 1024)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        // The last bytes, a page at a time.
        let page = Data(count: 4096)
        while (try? handle.write(contentsOf: page)) != nil {}
        try? handle.close()
    }

    func freeDisk(_ index: Int) {
        try? FileManager.default.removeItem(at: nodes[index].directory.appendingPathComponent("chaos-filler"))
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ChaosError("\(executable) \(arguments.joined(separator: " ")) failed")
        }
    }

    func pause(_ index: Int) {
        guard let process = nodes[index].process, !nodes[index].paused else { return }
        _ = Glibc.kill(process.processIdentifier, SIGSTOP)
        Self.waitUntilStopped(process.processIdentifier)
        timeline.down(index)
        nodes[index].paused = true
    }

    func resume(_ index: Int) {
        guard let process = nodes[index].process, nodes[index].paused else { return }
        nodes[index].paused = false
        timeline.up(index)
        _ = Glibc.kill(process.processIdentifier, SIGCONT)
    }

    /// Every node running and resumed.
    func healAll() throws {
        for index in nodes.indices {
            if nodes[index].process == nil {
                try start(index)
            } else {
                resume(index)
            }
        }
    }

    /// SIGTERM, then SIGKILL for any node still there after `grace`.
    func stopAll(grace: Duration = .seconds(5)) async {
        for index in nodes.indices {
            guard let process = nodes[index].process else { continue }
            if nodes[index].paused { _ = Glibc.kill(process.processIdentifier, SIGCONT) }
            _ = Glibc.kill(process.processIdentifier, SIGTERM)
        }
        let deadline = ContinuousClock.now + grace
        while nodes.contains(where: { $0.process?.isRunning == true }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for index in nodes.indices {
            if let process = nodes[index].process, process.isRunning {
                _ = Glibc.kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            nodes[index].process = nil
        }
    }

    /// The last lines of a node's log, for a report.
    func logTail(_ index: Int, lines: Int = 20) -> [String] {
        let log = logs.appendingPathComponent("\(nodes[index].id).log")
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return Array(text.split(separator: "\n").suffix(lines).map(String.init))
    }

    /// Waits (up to a second) until the kernel shows `pid` stopped: a signal is delivered
    /// asynchronously, and the timeline must not count a node down before it is.
    static func waitUntilStopped(_ pid: Int32) {
        for _ in 0..<1000 {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return }
            let state = stat[stat.index(after: close)...].dropFirst().first
            if state == "T" || state == "t" { return }
            usleep(1000)
        }
    }

    /// A TCP port nothing listens on now (the kernel's choice; a node binds it moments later).
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ChaosError("socket() failed: \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw ChaosError("bind() failed: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw ChaosError("getsockname() failed: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Where clients reach the nodes: base URLs by node index.
struct Endpoints: Sendable {
    let urls: [String]
}

/// When each node could not answer: from a kill or a pause to the restart or the resume. A node
/// counts as up from the moment its process starts again (recovering, it may not answer yet: the
/// checkers give it the benefit of the doubt).
struct Timeline {
    struct Span {
        var from: Instant
        var to: Instant
    }

    private(set) var spans: [[Span]]
    private var downSince: [Instant?]
    private let clock: HarnessClock

    init(count: Int, clock: HarnessClock) {
        spans = Array(repeating: [], count: count)
        downSince = Array(repeating: nil, count: count)
        self.clock = clock
    }

    mutating func down(_ node: Int) {
        if downSince[node] == nil { downSince[node] = clock.now() }
    }

    mutating func up(_ node: Int) {
        guard let since = downSince[node] else { return }
        spans[node].append(Span(from: since, to: clock.now()))
        downSince[node] = nil
    }

    /// Whether `node` was unable to answer for the whole of `from ... to`.
    func wasDown(_ node: Int, from: Instant, to: Instant) -> Bool {
        if let since = downSince[node], since <= from { return true }
        return spans[node].contains { $0.from <= from && $0.to >= to }
    }

    /// Whether `node` was unable to answer at some moment of `from ... to`.
    func wasDownAtSomePoint(_ node: Int, from: Instant, to: Instant) -> Bool {
        if let since = downSince[node], since <= to { return true }
        return spans[node].contains { $0.from <= to && $0.to >= from }
    }
}

/// The harness's clock: an `Instant` counted from the campaign's start, as the simulator counts its
/// virtual time, read from the monotonic clock.
struct HarnessClock: Sendable {
    let origin = ContinuousClock.now

    func now() -> Instant {
        let elapsed = ContinuousClock.now - origin
        return Instant.epoch.advanced(by: elapsed)
    }
}

struct ChaosError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints a line at once (standard output is a pipe under make and the tests: no buffering).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
