import AsyncHTTPClient
import CacheCore
import Foundation
import HistoryCheckers
import NIOCore
import NIOHTTP1
import Synchronization

/// What a campaign is asked to do.
struct CampaignOptions: Sendable {
    var seed: UInt64
    var nodes: Int
    var replicationFactor: Int
    var duration: Duration
    var clients: Int
    var faults: Set<String>
    var walSync: String
    var injectedBug: String?
    var binary: URL
    var directory: URL
    var network: ChaosNetwork?
    var viaCacheClient: Bool
    /// A cache-node built without jemalloc, for clock skew (`nil`: no clock-skew faults).
    var skewBinary: URL?
    /// The longest a request to a running node may take (its replica timeout is 1 s, and a write
    /// has two phases).
    var requestLimit: Duration
    /// How long replicas may take to agree once every fault is healed (the README: "within seconds").
    var convergenceLimit = Duration.seconds(30)
    /// How far apart the nodes' clocks and the harness's may be (one machine: one clock), and
    /// more with clock-skew faults (the largest skew within the bound).
    var clockSlack: Duration {
        .milliseconds(
            250 + (skewBinary == nil ? 0 : (Fault.skews + Fault.jumps).filter { abs($0) < 500 }.map(abs).max() ?? 0))
    }

    /// The command that repeats this campaign.
    var command: String {
        var parts = [
            "cache-chaos", "--seed", "\(seed)", "--nodes", "\(nodes)", "--replication-factor", "\(replicationFactor)",
            "--duration", "\(duration.components.seconds)", "--clients", "\(clients)", "--wal-sync", walSync,
            "--faults", faults.sorted().joined(separator: ","),
        ]
        if network != nil { parts += ["--network", "namespaces"] }
        if requestLimit != .seconds(3) { parts += ["--request-limit-ms", "\(requestLimit.nanoseconds / 1_000_000)"] }
        if let injectedBug { parts += ["--inject-bug", injectedBug] }
        if let skewBinary { parts += ["--skew-node-binary", skewBinary.path] }
        if !viaCacheClient { parts.append("--no-cache-client") }
        return parts.joined(separator: " ")
    }
}

/// One campaign: start the nodes, run clients under the schedule's faults, heal, wait for the
/// replicas to agree, read every key at `all`, and judge the whole history.
struct Campaign {
    let options: CampaignOptions
    let clock = HarnessClock()

    /// Runs it and returns the violations found (printing the report as it goes).
    func run() async throws -> [Violation] {
        let schedule = FaultSchedule(
            seed: options.seed, nodes: options.nodes, duration: options.duration, kinds: options.faults,
            partitions: options.network != nil, skews: options.skewBinary != nil)
        say("cache-chaos: \(options.command)")
        say("schedule (\(schedule.episodes.count) faults):")
        for episode in schedule.episodes { say("  \(episode)") }

        var settings = [
            "GOSSIP_INTERVAL": "200ms", "HEARTBEAT_INTERVAL": "150ms", "FAILURE_TIMEOUT": "1500ms",
            "REPLICATION_FACTOR": "\(options.replicationFactor)", "WAL_SYNC": options.walSync, "EVENT_LOOPS": "1",
            "LOG_FORMAT": "text", "LOG_LEVEL": "notice", "SLOW_REQUEST_MS": "0",
        ]
        if let bug = options.injectedBug { settings["INJECT_BUG"] = bug }
        if options.network != nil {
            // Peers on addresses other machines could reach authenticate one another.
            let secret = options.directory.appendingPathComponent("cluster.secret")
            try Data("cache-chaos-secret-0123456789abcdef\n".utf8).write(to: secret)
            settings["CLUSTER_SECRET_FILE"] = secret.path
        }
        let nodes = try NodeProcesses(
            count: options.nodes, binary: options.binary, directory: options.directory, settings: settings,
            network: options.network, clock: clock)
        nodes.skewBinary = options.skewBinary
        if options.network != nil, options.faults.contains("disk-full") {
            try nodes.mountDisks(megabytes: 16)
        }
        do {
            let violations = try await run(schedule, on: nodes)
            await nodes.stopAll()
            nodes.unmountDisks()
            return violations
        } catch {
            await nodes.stopAll()
            nodes.unmountDisks()
            throw error
        }
    }

    private func run(_ schedule: FaultSchedule, on nodes: NodeProcesses) async throws -> [Violation] {
        for index in 0..<options.nodes { try nodes.start(index) }
        let endpoints = nodes.endpoints
        try await waitForMembership(endpoints, limit: .seconds(60))
        let start = clock.now()
        say("cluster of \(options.nodes) up at \(seconds(Instant.epoch.duration(to: start))); faults begin")

        let recorder = Recorder(clock: clock)
        let stopped = Mutex(false)
        let workload = Workload(endpoints: endpoints, recorder: recorder, seed: options.seed)
        let clients = Task {
            await workload.run(clients: options.clients, viaCacheClient: options.viaCacheClient) {
                stopped.withLock { $0 }
            }
        }
        var dataLosses: [Instant] = []
        var cuts: [(node: Int, from: Instant, to: Instant, cut: ChaosNetwork.Cut)] = []
        var openCut: (node: Int, from: Instant, cut: ChaosNetwork.Cut)?
        var filled: [Int] = []
        var departures: [(from: Instant, to: Instant)] = []
        var membershipViolations: [Violation] = []
        // The last fault is left in place until the load ends, so that convergence is measured
        // from a real heal.
        for (number, episode) in schedule.episodes.enumerated() {
            let due = episode.at - start.duration(to: clock.now())
            if due > .zero { try await Task.sleep(for: due) }
            let heals = number < schedule.episodes.count - 1
            switch episode.fault {
            case .kill(let node):
                nodes.kill(node)
                try await Task.sleep(for: episode.length)
                if heals { try nodes.start(node) }
            case .wipe(let node):
                nodes.kill(node)
                dataLosses.append(clock.now())
                try nodes.wipe(node)
                try await Task.sleep(for: episode.length)
                if heals { try nodes.start(node) }
            case .pause(let node):
                nodes.pause(node)
                try await Task.sleep(for: episode.length)
                if heals { nodes.resume(node) }
            case .killTwo(let first, let second):
                nodes.kill(first)
                nodes.kill(second)
                try await Task.sleep(for: episode.length)
                if heals {
                    try nodes.start(first)
                    try nodes.start(second)
                }
            case .restartAll:
                for node in 0..<options.nodes { nodes.kill(node) }
                try await Task.sleep(for: episode.length)
                for node in 0..<options.nodes { try nodes.start(node) }
            case .skewClock(let node, let milliseconds):
                nodes.kill(node)
                try nodes.start(node, skew: milliseconds)
                try await Task.sleep(for: episode.length)
                if heals {
                    nodes.kill(node)
                    try nodes.start(node)
                }
            case .jumpClock(let node, let milliseconds):
                nodes.kill(node)
                try nodes.start(node, jumpable: true)
                // Running and joined first; libfaketime reads the offset again within a second.
                try await Task.sleep(for: .seconds(1))
                try nodes.jump(node, milliseconds: milliseconds)
                try await Task.sleep(for: episode.length - .seconds(1))
                if heals {
                    nodes.kill(node)
                    try nodes.start(node)
                }
            case .fillDisk(let node):
                nodes.fillDisk(node)
                try await Task.sleep(for: episode.length)
                if heals { nodes.freeDisk(node) } else { filled.append(node) }
            case .drain(let node):
                if !(await nodes.terminate(node)) {
                    membershipViolations.append(Violation(.timeout, "n\(node) did not exit within 10 s of SIGTERM"))
                }
                try await Task.sleep(for: episode.length)
                if heals { try nodes.start(node) }
            case .leave(let node), .forget(let node):
                let departure = try await depart(
                    node, forgotten: episode.fault != .leave(node: node), nodes: nodes, endpoints: endpoints)
                if let lost = departure.dataLostAt { dataLosses.append(lost) }
                departures.append(departure.window)
                membershipViolations += departure.violations
            case .cut(let node, let cut):
                guard let network = options.network else { break }
                try network.cut(node, cut)
                openCut = (node, clock.now(), cut)
                try await Task.sleep(for: episode.length)
                if heals, let open = openCut {
                    cuts.append((open.node, open.from, clock.now(), open.cut))
                    try network.heal(node)
                    openCut = nil
                }
            }
        }
        let remaining = clock.now().duration(to: start.advanced(by: options.duration))
        if remaining > .zero { try await Task.sleep(for: remaining) }
        stopped.withLock { $0 = true }
        await clients.value
        let loadEnd = clock.now()

        // Heal: every node running, every link whole; then the replicas must agree in time.
        if let open = openCut { cuts.append((open.node, open.from, clock.now(), open.cut)) }
        for node in filled { nodes.freeDisk(node) }
        try nodes.healAll()
        if let network = options.network { for node in 0..<options.nodes { try network.heal(node) } }
        let healed = clock.now()
        var violations = membershipViolations
        let converged = await waitForConvergence(endpoints, limit: options.convergenceLimit)
        let convergedAt = clock.now()
        if let disagreement = converged {
            violations.append(
                Violation(
                    .convergence,
                    "replicas still disagree \(seconds(options.convergenceLimit)) after every fault healed: \(disagreement)"
                ))
        }
        // Every TTL written has ended before the final reads.
        let lastInvoke = recorder.history.last?.invoke ?? loadEnd
        let wait = clock.now().duration(to: lastInvoke.advanced(by: Keys.longestTimeToLive + .seconds(1)))
        if wait > .zero { try await Task.sleep(for: wait) }
        let finals = try await finalReads(endpoints, recorder: recorder)

        // Judge.
        let history = recorder.history
        let timeline = nodes.timeline
        violations += check(
            history, finals: finals, timeline: timeline, dataLosses: dataLosses, cuts: cuts, departures: departures)
        report(
            history, violations: violations, schedule: schedule, start: start, loadEnd: loadEnd, healed: healed,
            convergedAt: converged == nil ? convergedAt : nil)
        if !violations.isEmpty {
            for index in 0..<options.nodes {
                say("last lines of n\(index)'s log:")
                for line in nodes.logTail(index, lines: 8) { say("  \(line)") }
            }
        }
        return violations
    }

    // MARK: Departures

    /// A departure of `node`: it leaves (or, `forgotten`, is killed and forgotten once the others
    /// hold it dead); every other node is then killed and started again, and each must still hold
    /// it departed (the membership its log kept); then it comes back with an empty data directory
    /// and joins again. Returns the window in which the replica sets moved (from the leave or the
    /// forget until a few seconds after every node sees it alive again), when a forgotten node's
    /// data was lost, and the violations seen.
    func depart(
        _ node: Int, forgotten: Bool, nodes: NodeProcesses, endpoints: Endpoints
    ) async throws -> (window: (from: Instant, to: Instant), dataLostAt: Instant?, violations: [Violation]) {
        let id = nodes.id(node)
        let others = (0..<options.nodes).filter { $0 != node }
        var violations: [Violation] = []
        func found(_ message: String) {
            say("  membership: \(message)")
            violations.append(Violation(.membership, message))
        }
        let from: Instant
        var dataLostAt: Instant?
        if forgotten {
            nodes.kill(node)
            dataLostAt = clock.now()
            if !(await waitUntil(others, hold: id, "dead", endpoints: endpoints, limit: .seconds(30))) {
                found("the others did not all hold n\(node) dead within 30 s of its death")
            }
            from = clock.now()
            let forgetter = others[Int(options.seed % UInt64(others.count))]
            let answer = await Self.request(endpoints.urls[forgetter] + "/cluster/members/\(id)", method: .DELETE)
            if answer?.status != 200 {
                found(
                    "n\(forgetter) refused to forget n\(node): \(answer.map { "\($0.status) \($0.body)" } ?? "no answer")"
                )
            }
        } else {
            from = clock.now()
            let answer = await Self.request(endpoints.urls[node] + "/cluster/leave", method: .POST)
            if answer?.status != 202 {
                found("n\(node) refused to leave: \(answer.map { "\($0.status) \($0.body)" } ?? "no answer")")
            }
            if !(await nodes.waitForExit(node, limit: .seconds(60))) {
                found("n\(node) had not handed its keys off and exited 60 s after it was asked to leave")
                nodes.kill(node)
            }
        }
        if !(await waitUntil(others, hold: id, "left", endpoints: endpoints, limit: .seconds(15))) {
            found("the others did not all hold n\(node) departed within 15 s")
        }
        // Every other node killed and started again: what they knew of the departure is what their
        // logs kept (a process crash loses nothing the node had written).
        for other in others { nodes.kill(other) }
        try await Task.sleep(for: .milliseconds(300))
        for other in others { try nodes.start(other) }
        for other in others {
            let status = await firstStatus(of: id, at: endpoints.urls[other], limit: .seconds(30))
            if status != "left" {
                found("after a full restart n\(other) holds n\(node) as \(status ?? "unknown"), not departed")
            }
        }
        // It comes back as a new node would: an empty data directory, the same name.
        try nodes.wipe(node)
        try nodes.start(node)
        do {
            try await waitForMembership(endpoints, limit: .seconds(30))
        } catch {
            found("n\(node) had not joined again 30 s after it started: \(error)")
        }
        say("  \(seconds(Instant.epoch.duration(to: clock.now()))) n\(node) departed and joined again")
        return ((from, clock.now().advanced(by: .seconds(5))), dataLostAt, violations)
    }

    /// Waits until every node of `indices` lists `id` with `status` in `/cluster`.
    func waitUntil(
        _ indices: [Int], hold id: String, _ status: String, endpoints: Endpoints, limit: Duration
    ) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var all = true
            for index in indices where await Self.members(at: endpoints.urls[index])?[id] != status {
                all = false
                break
            }
            if all { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// What the node at `url` says of `id` the first time it lists its members (`nil`: not listed),
    /// waiting up to `limit` for it to answer.
    func firstStatus(of id: String, at url: String, limit: Duration) async -> String? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let members = await Self.members(at: url) { return members[id] }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// The status of every member the node at `url` lists in `/cluster`, by name; `nil` when it
    /// does not answer with its members (down, or still recovering).
    static func members(at url: String) async -> [String: String]? {
        guard let answer = await request(url + "/cluster"), answer.status == 200,
            let document = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
            let members = document["members"] as? [[String: Any]]
        else { return nil }
        var statuses: [String: String] = [:]
        for member in members {
            if let id = member["id"] as? String, let status = member["status"] as? String { statuses[id] = status }
        }
        return statuses
    }

    // MARK: Phases

    func waitForMembership(_ endpoints: Endpoints, limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await disagreementOfMembers(endpoints) == nil { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ChaosError("the nodes did not all see one another alive within \(limit)")
    }

    /// Why the members do not yet all see one another alive, or nil.
    func disagreementOfMembers(_ endpoints: Endpoints) async -> String? {
        for (index, url) in endpoints.urls.enumerated() {
            guard let answer = await Self.request(url + "/cluster"), answer.status == 200,
                let document = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
                let members = document["members"] as? [[String: Any]]
            else { return "n\(index) does not answer /cluster" }
            let alive = members.filter { $0["status"] as? String == "alive" }.count
            if alive != endpoints.urls.count { return "n\(index) sees \(alive) of \(endpoints.urls.count) alive" }
        }
        return nil
    }

    /// Waits until every node sees every other alive and, for every key, every node's `one` read
    /// (its own replica first) answers the same; returns the last disagreement if it never happens.
    func waitForConvergence(_ endpoints: Endpoints, limit: Duration) async -> String? {
        let deadline = ContinuousClock.now + limit
        var last = "never asked"
        while ContinuousClock.now < deadline {
            if let disagreement = await disagreementOfMembers(endpoints) {
                last = disagreement
            } else if let disagreement = await disagreementOfReplicas(endpoints) {
                last = disagreement
            } else {
                return nil
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return last
    }

    func disagreementOfReplicas(_ endpoints: Endpoints) async -> String? {
        for key in Keys.all {
            var seen: [String] = []
            for url in endpoints.urls {
                guard let answer = await Self.request(url + "/get/\(key)?consistency=one"),
                    answer.status == 200 || answer.status == 404
                else { return "a node did not answer a read of \(key)" }
                let document = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
                seen.append(answer.status == 404 ? "absent" : (document?["value"] as? String ?? "?"))
            }
            if Set(seen).count > 1 { return "\(key): \(seen.joined(separator: ", "))" }
        }
        return nil
    }

    /// How many times a final read refused with 503 is made before the campaign gives up.
    static let finalReadAttempts = 3

    /// Reads every key at `all` through node 0 and records the reads in the history.
    func finalReads(_ endpoints: Endpoints, recorder: Recorder) async throws -> [String: Int?] {
        var finals: [String: Int?] = [:]
        for key in Keys.all {
            // A read at `all` is refused (503) when one replica's answer is late, as once in CI
            // just after convergence: a refusal says nothing, and the read is made again.
            for attempt in 1...Self.finalReadAttempts {
                let index = recorder.invoke(client: -2, key: key, kind: { _ in .get }, level: .all, node: 0)
                guard let answer = await Self.request(endpoints.urls[0] + "/get/\(key)?consistency=all") else {
                    recorder.complete(index) { $0.outcome = .unknown }
                    throw ChaosError("the final read of \(key) was not answered")
                }
                recorder.complete(index) { Workload.judge(answer, into: &$0) }
                if answer.status == 200 || answer.status == 404 {
                    finals[key] = recorder.history[index].read
                    break
                }
                guard answer.status == 503, attempt < Self.finalReadAttempts else {
                    throw ChaosError("the final read of \(key) at all failed: \(answer.status) \(answer.body)")
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
        return finals
    }

    static func request(_ url: String, method: HTTPMethod = .GET) async -> Answer? {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = method
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            return Answer(status: Int(response.status.code), body: body)
        } catch {
            return nil
        }
    }

    // MARK: Checking

    func check(
        _ history: [RecordedOperation], finals: [String: Int?], timeline: Timeline, dataLosses: [Instant],
        cuts: [(node: Int, from: Instant, to: Instant, cut: ChaosNetwork.Cut)],
        departures: [(from: Instant, to: Instant)]
    ) -> [Violation] {
        // Each key's replicas while the membership is whole, as every node's ring places them (dead
        // members keep their share).
        let ring = HashRing(members: (0..<options.nodes).map { NodeID("n\($0)") })
        let factor = min(options.replicationFactor, options.nodes)
        var replicasOfKey: [String: [Int]] = [:]
        for key in Keys.all {
            replicasOfKey[key] = ring.preferenceList(for: Array(key.utf8), count: factor).compactMap {
                Int($0.rawValue.dropFirst())
            }
        }
        // While a member departs and joins again the replica sets move: not judged.
        func duringDeparture(_ operation: RecordedOperation) -> Bool {
            departures.contains { operation.complete >= $0.from && operation.invoke <= $0.to }
        }
        // A node that lost its data answers from an empty store until repair reaches it: reads
        // meanwhile are not judged for linearizability and writes may have been lost with it.
        let repairAllowance = FaultSchedule.dataLossSpacing
        func nearDataLoss(_ operation: RecordedOperation) -> Bool {
            dataLosses.contains { loss in
                operation.complete >= loss && operation.invoke <= loss.advanced(by: repairAllowance)
            }
        }
        var violations: [Violation] = []
        for key in Keys.linearizable {
            let operations = history.filter { $0.key == key }.compactMap { operation -> RecordedOperation? in
                guard nearDataLoss(operation) || duringDeparture(operation) else { return operation }
                guard operation.isWrite else { return nil }
                var optional = operation
                optional.outcome = .unknown
                optional.complete = .distantFuture
                return optional
            }
            if HistoryChecker.linearizability(of: operations) == .violation {
                violations.append(
                    Violation(
                        .linearizability, "the history of \(key) has no legal order (\(operations.count) operations)",
                        key: key))
            }
        }
        // The budget: one replica's disk at a time. A write one replica acknowledged (`one`, or any
        // level with a single replica) shortly before a data loss may have lived on that replica
        // alone, and is excused; one that W >= 2 acknowledged survives a single loss.
        violations += HistoryChecker.lostWrites(history, finals: finals, slack: options.clockSlack) { operation in
            operation.level.required(of: options.replicationFactor) <= 1
                && dataLosses.contains {
                    $0 >= operation.complete && operation.complete.advanced(by: repairAllowance) >= $0
                }
        }
        violations += HistoryChecker.timeToLive(history, slack: options.clockSlack)
        violations += HistoryChecker.levels(history, replicationFactor: factor) { operation in
            guard !duringDeparture(operation), let replicas = replicasOfKey[operation.key] else { return 0 }
            let to = operation.complete
            return replicas.filter { replica in
                if timeline.wasDown(replica, from: operation.invoke, to: to) { return true }
                // A coordinator always reaches itself.
                if replica == operation.node { return false }
                return cuts.contains { cut in
                    cut.cut != .flaky && cut.from <= operation.invoke && cut.to >= to
                        && (cut.node == replica || (cut.node == operation.node && replica != operation.node))
                }
            }.count
        }
        violations += HistoryChecker.refusals(history, isDocumented: Self.isDocumented)
        violations += HistoryChecker.timeouts(history, limit: options.requestLimit) { operation in
            // A request to a node that stopped meanwhile (until the client gave up on it), or
            // through a client choosing its node.
            let end =
                operation.complete == .distantFuture
                ? operation.invoke.advanced(by: Workload.requestTimeout) : operation.complete
            return operation.node < 0 || timeline.wasDownAtSomePoint(operation.node, from: operation.invoke, to: end)
                || cuts.contains { $0.from <= end && $0.to >= operation.invoke }
        }
        return violations
    }

    /// A documented refusal: 503 with a JSON body naming the problem, and for an unmet level, the
    /// level and how many replicas answered of how many.
    static func isDocumented(_ refusal: String) -> Bool {
        guard refusal.hasPrefix("503 "),
            let document = try? JSONSerialization.jsonObject(with: Data(refusal.dropFirst(4).utf8)) as? [String: Any],
            let error = document["error"] as? String
        else { return false }
        if error.hasPrefix("consistency level") {
            return document["consistency"] is String && document["answered"] is Int && document["required"] is Int
        }
        return true
    }

    // MARK: Report

    func report(
        _ history: [RecordedOperation], violations: [Violation], schedule: FaultSchedule, start: Instant,
        loadEnd: Instant, healed: Instant, convergedAt: Instant?
    ) {
        let ok = history.filter { $0.outcome == .ok }.count
        let failed = history.filter { $0.outcome == .failed }.count
        let unknown = history.filter { $0.outcome == .unknown }.count
        say(
            "\(history.count) operations in \(seconds(start.duration(to: loadEnd))): \(ok) ok, \(failed) refused, \(unknown) unanswered; \(schedule.episodes.count) faults"
        )
        if let convergedAt {
            say("converged \(seconds(healed.duration(to: convergedAt))) after every fault healed")
        }
        let broken = Set(violations.map(\.checker))
        for checker in Violation.Checker.allCases where Self.realCheckers.contains(checker) {
            let verdict = broken.contains(checker) ? "VIOLATED" : "held"
            say("  \(checker.rawValue): \(verdict)")
        }
        guard !violations.isEmpty else {
            say("no violations")
            return
        }
        say("\(violations.count) violations:")
        for violation in violations.prefix(20) { say("  \(violation)") }
        var shown = Set<String>()
        for violation in violations {
            guard let key = violation.key, shown.count < 3, shown.insert(key).inserted else { continue }
            // Around the operation that broke it, or the key's last operations.
            let operations = history.filter { $0.key == key }
            let around =
                violation.at.map { at in
                    operations.filter { abs(at.duration(to: $0.invoke).secondsValue) < 2 }
                } ?? Array(operations.suffix(40))
            say(
                "history of \(key)\(violation.at.map { " around \(seconds(Instant.epoch.duration(to: $0)))" } ?? ", last operations"):"
            )
            for operation in around.suffix(60) { say("  \(Self.line(operation))") }
        }
        // The whole history beside the nodes' data and logs, which a failed campaign keeps.
        let file = options.directory.appendingPathComponent("history.txt")
        let lines = history.sorted { $0.invoke < $1.invoke }.map { "\(Self.line($0))\n" }.joined()
        if (try? lines.write(to: file, atomically: true, encoding: .utf8)) != nil {
            say("every operation: \(file.path)")
        }
        say("repeat with: \(options.command)")
    }

    static let realCheckers: [Violation.Checker] = [
        .lostWrite, .resurrection, .linearizability, .timeToLive, .level, .refusal, .timeout, .convergence,
        .membership,
    ]

    static func line(_ operation: RecordedOperation) -> String {
        let complete =
            operation.complete == .distantFuture ? "?" : seconds(Instant.epoch.duration(to: operation.complete))
        var outcome = "\(operation.outcome)"
        if case .get = operation.kind, operation.outcome == .ok {
            outcome = operation.read.map { "v\($0)" } ?? "absent"
        }
        if let refusal = operation.refusal { outcome += " (\(refusal.prefix(120)))" }
        return "\(seconds(Instant.epoch.duration(to: operation.invoke)))–\(complete) c\(operation.client) "
            + "\(HistoryChecker.describe(operation)) at \(operation.level): \(outcome)"
    }
}
