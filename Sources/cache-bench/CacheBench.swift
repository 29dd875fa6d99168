import ArgumentParser
import CacheClient
import CacheCore
import Foundation
import Histogram
import Synchronization

/// `cache-bench`: load for a cache-node cluster through `CacheClient`, with latency from
/// HdrHistograms.
///
/// Closed loop (`--concurrency N`): N callers, each sending its next request when the last one
/// answered. Open loop (`--rate R`): requests are due at a constant R per second whatever the
/// answers do, and each one's latency runs from when it was due, not from when a caller got to it,
/// so a stall shows in the figures instead of hiding in fewer requests (no coordinated omission).
@main
struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-bench",
        abstract: "Load a cache-node cluster and report latency and throughput per operation.",
        discussion: """
            Closed loop by default (--concurrency callers back to back); --rate makes it open loop \
            (requests due at a constant rate, latency measured from when each was due). Errors and \
            timeouts are counted and the run goes on: kill a node during a run to see failover.
            """,
        version: "cache-bench \(Release.version)"
    )

    @Option(name: .long, help: ArgumentHelp("Nodes' HTTP addresses, comma-separated.", valueName: "host:port,…"))
    var nodes: String = "127.0.0.1:8000"
    @Option(name: .long, help: "Seconds measured.") var duration: Double = 10
    @Option(name: .long, help: "The token for nodes with TOKENS_FILE (default: CACHE_TOKEN).") var token: String?
    @Option(name: .long, help: "Use HTTPS, trusting this PEM CA file.") var tlsCa: String?
    @Option(name: .long, help: "Seconds of load before measuring.") var warmup: Double = 1
    @Flag(name: .long, help: "Write every key once before the run (not measured).") var preload = false
    @Option(name: .long, help: ArgumentHelp("Read:write[:delete] weights.", valueName: "R:W[:D]"))
    var ratio: String = "9:1"
    @Option(name: .long, help: "Distinct keys.") var keys: Int = 10_000
    @Option(name: .long, help: "Key name prefix.") var keyPrefix: String = "bench:"
    @Option(name: .long, help: "uniform, zipfian (θ 0.99, scrambled) or sequential.")
    var distribution: String = "uniform"
    @Option(name: .long, help: ArgumentHelp("Value bytes, or a range.", valueName: "N|MIN-MAX"))
    var valueSize: String = "100"
    @Option(name: .long, help: "Seconds each written value lives (default: the node's TTL_DEFAULT; 0: forever).")
    var ttl: Int?
    @Option(name: .long, help: "one, quorum or all (default: the node's CONSISTENCY).") var consistency: String?
    @Option(name: .long, help: "Callers (closed loop), or most requests in flight (open loop).")
    var concurrency: Int = 50
    @Option(name: .long, help: "Requests per second, open loop (default: closed loop).") var rate: Double?
    @Option(name: .long, help: "Seconds a request may take, retries included.") var timeout: Double = 2
    @Option(name: .long, help: "Retries per request.") var maximumRetries: Int = 3
    @Option(name: .long, help: "Seed of the key and operation choices.") var seed: UInt64 = 1
    @Flag(name: .long, help: "Print the results as JSON on stdout.") var json = false
    @Flag(
        name: .long, inversion: .prefixedNo,
        help: "A progress line per second on stderr (default: when stderr is a terminal).")
    var progress: Bool?

    func validate() throws {
        guard duration > 0, warmup >= 0 else {
            throw ValidationError("--duration must be positive, --warmup 0 or more")
        }
        guard keys > 0 else { throw ValidationError("--keys must be positive") }
        guard Workload.Mix(ratio) != nil else { throw ValidationError("--ratio is R:W or R:W:D, e.g. 9:1 or 80:15:5") }
        guard Workload.Distribution(rawValue: distribution) != nil else {
            throw ValidationError("--distribution is uniform, zipfian or sequential")
        }
        guard let sizes = valueSizes, sizes.lowerBound >= 0, sizes.upperBound <= 1 << 20 else {
            throw ValidationError("--value-size is N or MIN-MAX, at most 1048576 bytes")
        }
        if let consistency, CacheConsistency(rawValue: consistency) == nil {
            throw ValidationError("--consistency is one, quorum or all")
        }
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        guard timeout > 0, maximumRetries >= 0 else { throw ValidationError("--timeout must be positive") }
    }

    var valueSizes: ClosedRange<Int>? {
        let parts = valueSize.split(separator: "-").map { Int($0) }
        guard let low = parts.first ?? nil else { return nil }
        if parts.count == 1 { return low...low }
        guard parts.count == 2, let high = parts[1], high >= low else { return nil }
        return low...high
    }

    func run() async throws {
        let level = consistency.flatMap(CacheConsistency.init(rawValue:))
        let config = CacheClientConfig(
            nodes: nodes.split(separator: ",").map(String.init), timeout: .milliseconds(Int64(timeout * 1000)),
            maximumRetries: maximumRetries, connectionsPerNode: concurrency,
            poolWaitTimeout: .milliseconds(Int64(timeout * 1000)),
            consistency: level,
            token: token ?? ProcessInfo.processInfo.environment["CACHE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
            tls: tlsCa.map { CacheClientConfig.TLS(caFile: $0) })
        let values = Workload.makeValues(sizes: valueSizes!, count: 64, seed: seed)
        let mix = Workload.Mix(ratio)!
        let ttl: CacheTTL = self.ttl.map { $0 == 0 ? .never : .seconds($0) } ?? .nodeDefault
        let showProgress = progress ?? (isatty(STDERR_FILENO) == 1)
        let settings = Settings(
            mode: rate == nil ? "closed" : "open", concurrency: concurrency, rate: rate, duration: duration,
            warmup: warmup, keys: keys, distribution: distribution, valueSize: valueSize, ratio: mix.description,
            consistency: consistency ?? "node default", nodes: config.nodes)
        do {
            try await withCacheClient(config) { client in
                if preload {
                    try await Self.preload(
                        client: client, keys: keys, prefix: keyPrefix, values: values, ttl: ttl, width: concurrency)
                }
                let recorder = Recorder()
                let run = Run(
                    client: client, recorder: recorder, concurrency: concurrency, rate: rate,
                    warmup: .milliseconds(Int64(warmup * 1000)), duration: .milliseconds(Int64(duration * 1000)),
                    ttl: ttl
                ) { worker in
                    Workload(
                        keys: keys, keyPrefix: keyPrefix, mix: mix,
                        distribution: Workload.Distribution(rawValue: distribution)!, values: values, seed: seed,
                        worker: worker, workers: concurrency)
                }
                let elapsed = try await run.execute(progress: showProgress)
                let report = Report(
                    settings: settings, results: recorder.results(), measuredSeconds: elapsed,
                    client: client.statistics)
                if json {
                    print(report.json())
                } else {
                    print(report.text())
                }
            }
        } catch let error as CacheClientError {
            FileHandle.standardError.write(Data("cache-bench: \(error)\n".utf8))
            throw ExitCode(3)
        }
    }

    /// Writes every key once, `width` at a time.
    static func preload(
        client: CacheClient, keys: Int, prefix: String, values: [String], ttl: CacheTTL, width: Int
    ) async throws {
        let next = TicketCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<width {
                group.addTask {
                    while true {
                        let index = next.take()
                        guard index < keys else { return }
                        try await client.put(prefix + String(index), values[index % values.count], ttl: ttl)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// What the report repeats about the run's shape.
struct Settings: Sendable {
    var mode: String
    var concurrency: Int
    var rate: Double?
    var duration: Double
    var warmup: Double
    var keys: Int
    var distribution: String
    var valueSize: String
    var ratio: String
    var consistency: String
    var nodes: [String]
}

/// The load itself: callers that pick an operation, send it and record how it went.
struct Run: Sendable {
    let client: CacheClient
    let recorder: Recorder
    let concurrency: Int
    let rate: Double?
    let warmup: Duration
    let duration: Duration
    let ttl: CacheTTL
    let makeWorkload: @Sendable (Int) -> Workload

    /// Runs the load; returns the seconds measured.
    func execute(progress: Bool) async throws -> Double {
        let start = ContinuousClock.now
        let measuredFrom = start + warmup
        let end = measuredFrom + duration
        let ticket = TicketCounter()
        let interval = rate.map { Duration.nanoseconds(Int64(1e9 / $0)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var workload = makeWorkload(worker)
                    while true {
                        let due: ContinuousClock.Instant
                        if let interval {
                            // Open loop: the next request slot, whether or not the last answered.
                            due = start + interval * ticket.take()
                            guard due < end else { return }
                            if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                        } else {
                            due = .now
                            guard due < end else { return }
                        }
                        let operation = workload.nextOperation()
                        let outcome = await send(operation, &workload)
                        let finished = ContinuousClock.now
                        guard due >= measuredFrom else { continue }
                        let microseconds = UInt64(max(0, (finished - due).nanoseconds / 1000))
                        let second = Int((finished - measuredFrom).nanoseconds / 1_000_000_000)
                        recorder.record(operation, outcome, microseconds: microseconds, second: second)
                    }
                }
            }
            if progress {
                group.addTask { try await reportProgress(from: measuredFrom, until: end) }
            }
            try await group.waitForAll()
        }
        return (min(ContinuousClock.now, end) - measuredFrom).secondsValue
    }

    private func send(_ operation: Workload.Operation, _ workload: inout Workload) async -> Outcome {
        let key = workload.nextKey()
        do {
            switch operation {
            case .get:
                return try await client.get(key) == nil ? .miss : .hit
            case .put:
                try await client.put(key, workload.nextValue(), ttl: ttl)
                return .stored
            case .delete:
                return try await client.delete(key) ? .deleted : .absent
            }
        } catch CacheClientError.timeout {
            return .timeout
        } catch {
            return .error("\(error)")
        }
    }

    /// One line per second on stderr: the second's throughput, p50, p99 and errors.
    private func reportProgress(
        from measuredFrom: ContinuousClock.Instant, until end: ContinuousClock.Instant
    )
        async throws
    {
        var shown = -1
        while ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(200))
            let now = ContinuousClock.now
            guard now >= measuredFrom else { continue }
            recorder.tick(second: Int((now - measuredFrom).nanoseconds / 1_000_000_000))
            guard let second = recorder.takeSecond(after: shown) else { continue }
            shown = second.index
            let figures = second.figures
            let line = String(
                format: "[%3ds] %8d ops/s  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms  errors %d  timeouts %d\n",
                second.index + 1, figures.count, figures.latency.milliseconds(at: 50),
                figures.latency.milliseconds(at: 99), figures.latency.maximumMilliseconds, figures.errors,
                figures.timeouts)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Hands out 0, 1, 2, … to concurrent callers.
final class TicketCounter: Sendable {
    private let next = Atomic<Int>(0)

    func take() -> Int { next.add(1, ordering: .relaxed).oldValue }
}
