import AsyncHTTPClient
import CacheClient
import CacheCore
import Foundation
import HistoryCheckers
import NIOCore
import NIOPosix
import Synchronization

/// The keys clients use, as in the simulator: keys read and written at `quorum` and `all` only (whose
/// histories must be linearizable), keys used at every level, and keys written with TTLs.
enum Keys {
    static let linearizable = ["lin-0", "lin-1", "lin-2", "lin-3"]
    static let eventual = ["ev-0", "ev-1", "ev-2", "ev-3"]
    static let expiring = ["ttl-0", "ttl-1"]
    static var all: [String] { linearizable + eventual + expiring }
    /// TTLs are whole seconds over HTTP: 1 or 2.
    static let longestTimeToLive = Duration.seconds(2)
}

/// Every operation of a campaign, in invocation order, shared by the client tasks.
final class Recorder: Sendable {
    private let operations = Mutex<[RecordedOperation]>([])
    let clock: HarnessClock

    init(clock: HarnessClock) { self.clock = clock }

    /// Records an invocation; its index is the value a put writes, unique in the run.
    func invoke(
        client: Int, key: String, kind: (Int) -> RecordedOperation.Kind, level: ConsistencyLevel, node: Int
    )
        -> Int
    {
        operations.withLock { operations in
            let index = operations.count
            operations.append(
                RecordedOperation(
                    client: client, key: key, kind: kind(index), level: level, node: node, invoke: clock.now()))
            return index
        }
    }

    func complete(_ index: Int, _ update: (inout RecordedOperation) -> Void) {
        let now = clock.now()
        operations.withLock { operations in
            precondition(operations[index].outcome == .pending, "operation \(index) completed twice")
            update(&operations[index])
            if operations[index].outcome != .unknown { operations[index].complete = now }
        }
    }

    var history: [RecordedOperation] { operations.withLock { $0 } }
}

/// What one request through the HTTP API came back with.
struct Answer {
    var status: Int
    var body: String
}

/// The clients of a campaign: each issues one request at a time until told to stop, to a node it
/// draws (down ones too: their refusals are part of the history), or through a `CacheClient`.
struct Workload: Sendable {
    let endpoints: Endpoints
    let recorder: Recorder
    let seed: UInt64
    /// How long a client waits for an answer before it records the outcome as unknown.
    static let requestTimeout = Duration.seconds(6)

    func run(clients: Int, viaCacheClient: Bool, stop: @escaping @Sendable () -> Bool) async {
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    var random = SplitMix64(seed: seed).derived(stream: 100 + UInt64(client))
                    if client == 0, viaCacheClient {
                        await runThroughCacheClient(client: client, random: &random, stop: stop)
                    } else {
                        while !stop() {
                            await step(client: client, random: &random)
                            try? await Task.sleep(for: .milliseconds(Int64(5 + random.below(50))))
                        }
                    }
                }
            }
        }
    }

    /// One request: its key, level and kind drawn as the simulator's clients draw theirs.
    func step(client: Int, random: inout SplitMix64) async {
        let node = random.below(endpoints.urls.count)
        let (key, level, ttl) = Self.draw(&random)
        let roll = random.below(10)
        let index = recorder.invoke(
            client: client, key: key,
            kind: { value in roll < 4 ? .put(value: value, ttl: ttl) : roll == 4 ? .delete : .get }, level: level,
            node: node)
        let base = endpoints.urls[node]
        var request: HTTPClientRequest
        switch roll {
        case 0..<4:
            request = HTTPClientRequest(url: "\(base)/put?consistency=\(level.rawValue)")
            request.method = .PUT
            request.headers.add(name: "Content-Type", value: "application/json")
            let ttlField = ttl.map { ",\"ttl\":\($0.components.seconds)" } ?? ",\"ttl\":0"
            request.body = .bytes(ByteBuffer(string: #"{"key":"\#(key)","value":"v\#(index)"\#(ttlField)}"#))
        case 4:
            request = HTTPClientRequest(url: "\(base)/delete/\(key)?consistency=\(level.rawValue)")
            request.method = .DELETE
        default:
            request = HTTPClientRequest(url: "\(base)/get/\(key)?consistency=\(level.rawValue)")
        }
        do {
            let response = try await HTTPClient.shared.execute(
                request, timeout: .nanoseconds(Self.requestTimeout.nanoseconds))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            let answer = Answer(status: Int(response.status.code), body: body)
            recorder.complete(index) { Self.judge(answer, into: &$0) }
        } catch {
            let refused = Self.wasRefused(error)
            recorder.complete(index) { operation in
                operation.outcome = refused ? .failed : .unknown
                operation.refusal = nil
            }
        }
    }

    /// Reads an HTTP answer into the operation: success, absence, or a refusal kept for the
    /// refusal checker.
    static func judge(_ answer: Answer, into operation: inout RecordedOperation) {
        switch (operation.kind, answer.status) {
        case (.get, 200):
            guard let document = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
                let value = document["value"] as? String, let number = Int(value.dropFirst())
            else {
                operation.outcome = .failed
                operation.refusal = "200 without a value: \(answer.body)"
                return
            }
            operation.outcome = .ok
            operation.read = number
            if let seconds = document["ttl_remaining"] as? Int {
                operation.timeToLive = .remaining(.seconds(seconds))
            } else {
                operation.timeToLive = .never
            }
        case (.get, 404), (.delete, 404), (.delete, 200), (.put, 200):
            operation.outcome = .ok
        default:
            operation.outcome = .failed
            operation.refusal = "\(answer.status) \(answer.body)"
        }
    }

    /// Whether the request never reached a node (nothing listened): then it took no effect.
    static func wasRefused(_ error: any Error) -> Bool {
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED { return true }
        if error is NIOConnectionError { return true }
        return "\(error)".contains("connectionRefused") || "\(error)".contains("Connection refused")
    }

    /// A key and level as the simulator's clients draw them: most requests on linearizable keys.
    static func draw(_ random: inout SplitMix64) -> (key: String, level: ConsistencyLevel, ttl: Duration?) {
        let family = random.below(10)
        if family < 6 {
            let key = Keys.linearizable[random.below(Keys.linearizable.count)]
            return (key, random.below(2) == 0 ? .quorum : .all, nil)
        } else if family < 8 {
            let key = Keys.eventual[random.below(Keys.eventual.count)]
            return (key, ConsistencyLevel.allCases[random.below(ConsistencyLevel.allCases.count)], nil)
        } else {
            let key = Keys.expiring[random.below(Keys.expiring.count)]
            return (key, .quorum, .seconds(1 + Int64(random.below(2))))
        }
    }

    /// Client 0 goes through the Swift `CacheClient` (routing, retries, failover) on the eventual
    /// keys, at every level; its coordinator is the client's choice (recorded as -1).
    func runThroughCacheClient(client: Int, random: inout SplitMix64, stop: @Sendable () -> Bool) async {
        let hosts = endpoints.urls.map { String($0.dropFirst("http://".count)) }
        guard let cache = try? CacheClient(CacheClientConfig(nodes: hosts, timeout: .seconds(2))) else { return }
        while !stop() {
            let key = Keys.eventual[random.below(Keys.eventual.count)]
            let level = ConsistencyLevel.allCases[random.below(ConsistencyLevel.allCases.count)]
            let consistency = CacheConsistency(rawValue: level.rawValue)
            let roll = random.below(10)
            let index = recorder.invoke(
                client: client, key: key,
                kind: { value in roll < 4 ? .put(value: value, ttl: nil) : roll == 4 ? .delete : .get },
                level: level, node: -1)
            do {
                switch roll {
                case 0..<4:
                    try await cache.put(key, "v\(index)", ttl: .never, consistency: consistency)
                    recorder.complete(index) { $0.outcome = .ok }
                case 4:
                    try await cache.delete(key, consistency: consistency)
                    recorder.complete(index) { $0.outcome = .ok }
                default:
                    let value = try await cache.get(key, consistency: consistency)
                    recorder.complete(index) { operation in
                        operation.outcome = .ok
                        operation.read = value.flatMap { Int($0.dropFirst()) }
                    }
                }
            } catch let error as CacheClientError {
                recorder.complete(index) { operation in
                    switch error {
                    case .timeout, .noReachableNode, .poolExhausted:
                        operation.outcome = .unknown
                    case .unavailable, .server(status: 503, _, _):
                        // Decoded from a 503 with a JSON error (for an unmet level, naming the
                        // level and counts): the documented refusals.
                        operation.outcome = .failed
                    case .server(status: 408, let message, _) where message.contains(ClientDeadline.header):
                        // The write's deadline had passed by the node's clock, and it was not made
                        // (the client's last attempt: a node whose clock runs ahead of the harness's).
                        operation.outcome = .failed
                    default:
                        operation.outcome = .failed
                        operation.refusal = "client: \(error)"
                    }
                }
            } catch {
                recorder.complete(index) { $0.outcome = .unknown }
            }
            try? await Task.sleep(for: .milliseconds(Int64(5 + random.below(50))))
        }
        await cache.shutdown()
    }
}
