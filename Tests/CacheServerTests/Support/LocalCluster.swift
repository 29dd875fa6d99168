import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real `cache-node` processes on 127.0.0.1 with ephemeral ports, each with its own data directory,
/// joined through the first node's peer port. Nodes keep their ports across restarts.
final class LocalCluster: @unchecked Sendable {
    /// One node: its process (while running) and what it needs to start again.
    final class Member {
        let id: String
        var process: NodeProcess?
        var httpPort: Int
        var peerPort: Int
        var environment: [String: String]

        init(id: String, process: NodeProcess, httpPort: Int, peerPort: Int, environment: [String: String]) {
            self.id = id
            self.process = process
            self.httpPort = httpPort
            self.peerPort = peerPort
            self.environment = environment
        }
    }

    /// Timings that make failure detection take about a second and a half.
    static let fastTimings = [
        "GOSSIP_INTERVAL": "200ms", "HEARTBEAT_INTERVAL": "150ms", "FAILURE_TIMEOUT": "1500ms",
    ]

    let directory: URL
    private let common: [String: String]
    private(set) var members: [Member] = []

    /// A cluster under `directory`; `common` settings go to every node (on top of fast timings).
    init(directory: URL, common: [String: String] = [:]) {
        self.directory = directory
        self.common = Self.fastTimings.merging(common) { _, new in new }
    }

    deinit {
        for member in members { member.process?.send(SIGKILL) }
    }

    /// Starts node `id`, seeded with the first member (if any), and waits until it listens.
    @discardableResult
    func start(_ id: String, settings: [String: String] = [:]) async throws -> Member {
        var environment = common.merging(settings) { _, new in new }
        environment["NODE_ID"] = id
        environment["HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        environment["PEER_PORT"] = "0"
        if environment["EVENT_LOOPS"] == nil { environment["EVENT_LOOPS"] = "1" }
        environment["WAL_DIR"] = directory.appendingPathComponent(id).path
        if let first = members.first, environment["SEEDS"] == nil {
            environment["SEEDS"] = "127.0.0.1:\(first.peerPort)"
        }
        let process = try NodeProcess(environment: environment)
        let (http, peer) = try await process.waitUntilListeningPorts()
        environment["PORT"] = "\(http)"
        environment["PEER_PORT"] = "\(peer)"
        let member = Member(id: id, process: process, httpPort: http, peerPort: peer, environment: environment)
        members.append(member)
        return member
    }

    /// Starts `ids` in order (the first seeds the others) and waits until each sees them all alive.
    @discardableResult
    func startAll(_ ids: [String]) async throws -> [Member] {
        var started: [Member] = []
        for id in ids { started.append(try await start(id)) }
        try await waitForMembership(alive: ids)
        return started
    }

    func member(_ id: String) -> Member {
        guard let member = members.first(where: { $0.id == id }) else { preconditionFailure("no member \(id)") }
        return member
    }

    /// A fresh connection to node `id`.
    func client(_ id: String) throws -> HTTPTestClient { try HTTPTestClient(port: member(id).httpPort) }

    /// `kill -9`.
    func kill(_ id: String) async throws {
        let member = member(id)
        guard let process = member.process else { return }
        process.send(SIGKILL)
        _ = try await process.waitForExit()
        member.process = nil
    }

    /// Starts a stopped node again with the same ports, directory and settings.
    func restart(_ id: String) async throws {
        let member = member(id)
        precondition(member.process == nil, "\(id) is running")
        let process = try NodeProcess(environment: member.environment)
        _ = try await process.waitUntilListeningPorts()
        member.process = process
    }

    /// Waits until every node in `on` is ready and sees exactly `alive` as its alive members.
    func waitForMembership(
        alive: [String], on observers: [String]? = nil, timeout: Duration = .seconds(30)
    )
        async throws
    {
        let expected = Set(alive)
        try await eventually("members \(alive) alive on \(observers ?? alive)", timeout: timeout) {
            for observer in observers ?? alive {
                guard let ready = try? client(observer).request("GET", "/ready"), ready.status == 200,
                    let seen = try? aliveMembers(seenBy: observer), seen == expected
                else { return false }
            }
            return true
        }
    }

    /// The members node `observer` lists with status alive.
    func aliveMembers(seenBy observer: String) throws -> Set<String> {
        Set(try statuses(seenBy: observer).filter { $0.value == "alive" }.keys)
    }

    /// Every member `observer` lists, with its status.
    func statuses(seenBy observer: String) throws -> [String: String] {
        let document = try client(observer).request("GET", "/cluster").json
        let members = document["members"] as? [[String: Any]] ?? []
        var statuses: [String: String] = [:]
        for member in members {
            if let id = member["id"] as? String, let status = member["status"] as? String { statuses[id] = status }
        }
        return statuses
    }

    /// Node `id`'s `/stats` figure `name`.
    func stat(_ name: String, of id: String) throws -> Int {
        try client(id).request("GET", "/stats").json[name] as? Int ?? -1
    }
}

/// Polls `condition` every 50 ms until it holds, or fails naming `what` after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    // The condition is asked once more after the deadline: a test process short of CPU may wake
    // from its sleep well past it, and what it waited for may have happened meanwhile.
    while true {
        let late = ContinuousClock.now >= deadline
        if try await condition() { return }
        if late { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("timed out after \(timeout) waiting for \(what)")
}

extension HTTPTestClient {
    /// `PUT /put` of a string value at `level`.
    func put(_ key: String, _ value: String, level: String? = nil) throws -> HTTPTestResponse {
        try request(
            "PUT", "/put" + (level.map { "?consistency=\($0)" } ?? ""), json: #"{"key":"\#(key)","value":"\#(value)"}"#)
    }

    /// `GET /get/{key}` at `level`.
    func get(_ key: String, level: String? = nil) throws -> HTTPTestResponse {
        try request("GET", "/get/\(key)" + (level.map { "?consistency=\($0)" } ?? ""))
    }

    /// The value read, or nil for a 404; throws on any other status.
    func value(_ key: String, level: String? = nil) throws -> String? {
        let response = try get(key, level: level)
        switch response.status {
        case 200: return try response.json["value"] as? String
        case 404: return nil
        default: throw TestFailure("GET \(key) at \(level ?? "default") answered \(response.status): \(response.text)")
        }
    }
}
