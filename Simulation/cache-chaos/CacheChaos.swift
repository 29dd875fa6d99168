import ArgumentParser
import AsyncHTTPClient
import CacheCore
import Foundation
import HistoryCheckers

#if canImport(Glibc)
    import Glibc
#endif

/// Real `cache-node` processes under a seeded schedule of faults, with concurrent clients whose
/// history the simulator's history checkers judge (docs/chaos.md).
@main
struct CacheChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-chaos",
        abstract: "Fault campaigns on real cache-node processes, checked against the README's guarantees.",
        discussion: """
            Exit status: 0 when every checker held, 1 on a violation (the report shows the history \
            around it and the command that repeats the campaign), 2 when the campaign could not run, \
            64 for a usage mistake (a release cache-node given --inject-bug among them).
            """)

    @Option(help: "The seed of the fault schedule and of the clients' choices.") var seed: UInt64 = 1
    @Option(help: "Campaigns to run, seeds seed, seed+1, ... (one summary line each at the end).")
    var campaigns: Int = 1
    @Option(help: "Nodes in the cluster.") var nodes: Int = 3
    @Option(help: "REPLICATION_FACTOR of the nodes.") var replicationFactor: Int = 3
    @Option(help: "Seconds of load and faults per campaign.") var duration: Int = 40
    @Option(help: "Concurrent clients.") var clients: Int = 6
    @Option(
        help:
            "Fault kinds, comma-separated: \(Fault.kinds.joined(separator: ", ")) (partition and disk-full need --network namespaces, clock-skew and clock-jump --skew-node-binary)."
    )
    var faults: String = Fault.kinds.joined(separator: ",")
    @Option(help: "WAL_SYNC of the nodes: always, interval or none.") var walSync: String = "always"
    @Option(help: "A deliberate bug for the nodes (test builds of cache-node only), to show a checker fails.")
    var injectBug: String?
    @Option(help: "loopback (every node on 127.0.0.1) or namespaces (a network namespace each; root).")
    var network: String = "loopback"
    @Option(help: "The cache-node binary (default: the one beside this executable).") var nodeBinary: String?
    @Option(
        help:
            "A cache-node built with WITHOUT_JEMALLOC=1, which libfaketime can run: enables clock-skew and clock-jump faults (faketime's library must be installed)."
    )
    var skewNodeBinary: String?
    @Option(help: "Where the nodes' data and logs go (default: a new temporary directory, deleted on success).")
    var directory: String?
    @Flag(help: "No client through the Swift CacheClient (raw HTTP only).") var noCacheClient = false
    @Option(help: "The longest a request to a running node may take before the timeout checker objects (ms).")
    var requestLimitMs: Int = 3000
    /// Set by the process itself when it re-runs inside the network it made.
    @Option(help: .hidden) var insideNetwork: String?

    func validate() throws {
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1 to 9") }
        guard (1...nodes).contains(replicationFactor) else {
            throw ValidationError("--replication-factor must be 1 to --nodes")
        }
        guard duration >= 5, duration <= 86_400 else { throw ValidationError("--duration must be 5 s to a day") }
        guard (1...64).contains(clients) else { throw ValidationError("--clients must be 1 to 64") }
        guard ["always", "interval", "none"].contains(walSync) else {
            throw ValidationError("--wal-sync must be always, interval or none")
        }
        guard ["loopback", "namespaces"].contains(network) else {
            throw ValidationError("--network must be loopback or namespaces")
        }
        let unknown = Set(faultKinds).subtracting(Fault.kinds)
        guard unknown.isEmpty else { throw ValidationError("unknown fault kinds: \(unknown.sorted())") }
        guard (1...10_000).contains(campaigns) else { throw ValidationError("--campaigns must be 1 to 10000") }
        guard (100...600_000).contains(requestLimitMs) else {
            throw ValidationError("--request-limit-ms must be 100 to 600000")
        }
    }

    var faultKinds: [String] { faults.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }

    func run() async throws {
        if network == "namespaces", insideNetwork == nil {
            try runInsideOwnNetwork()
        }
        let binary = URL(fileURLWithPath: nodeBinary ?? Self.sibling("cache-node"))
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw ValidationError("no cache-node at \(binary.path) (--node-binary)")
        }
        if let injectBug { try Self.checkInjectable(injectBug, by: binary) }
        let chaosNetwork = insideNetwork.map { ChaosNetwork(prefix: $0, count: nodes) }
        let skewBinary = skewNodeBinary.map { URL(fileURLWithPath: $0) }
        if let skewBinary {
            guard FileManager.default.isExecutableFile(atPath: skewBinary.path),
                FileManager.default.fileExists(atPath: NodeProcesses.faketime)
            else {
                throw ValidationError(
                    "--skew-node-binary needs an executable (\(skewBinary.path)) and libfaketime (\(NodeProcesses.faketime): apt install faketime)"
                )
            }
        }
        var failed: [(UInt64, [Violation])] = []
        var summaries: [String] = []
        for campaign in 0..<campaigns {
            let campaignSeed = seed &+ UInt64(campaign)
            let root: URL
            if let directory {
                root = URL(fileURLWithPath: directory).appendingPathComponent("seed-\(campaignSeed)")
            } else {
                root = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "cache-chaos-\(getpid())-\(campaignSeed)")
            }
            try? FileManager.default.removeItem(at: root)
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let options = CampaignOptions(
                seed: campaignSeed, nodes: nodes, replicationFactor: replicationFactor, duration: .seconds(duration),
                clients: clients, faults: Set(faultKinds), walSync: walSync, injectedBug: injectBug, binary: binary,
                directory: root, network: chaosNetwork, viaCacheClient: !noCacheClient, skewBinary: skewBinary,
                requestLimit: .milliseconds(requestLimitMs))
            let violations: [Violation]
            do {
                violations = try await Campaign(options: options).run()
            } catch {
                say("cache-chaos: seed \(campaignSeed) could not run: \(error) (data and logs kept in \(root.path))")
                try? await HTTPClient.shared.shutdown()
                throw ExitCode(2)
            }
            if violations.isEmpty {
                if directory == nil { try? FileManager.default.removeItem(at: root) }
            } else {
                failed.append((campaignSeed, violations))
                say("data and logs kept in \(root.path)")
            }
            let checkers = Set(violations.map(\.checker.rawValue)).sorted().joined(separator: ", ")
            summaries.append("seed \(campaignSeed): \(violations.isEmpty ? "held" : "VIOLATED (\(checkers))")")
        }
        if campaigns > 1 {
            say("\(campaigns) campaigns, \(failed.count) with violations")
            for summary in summaries { say("  \(summary)") }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    /// Makes the campaign's network, runs this same command again inside its harness namespace,
    /// removes the network whatever happened, and exits with the inner run's status.
    func runInsideOwnNetwork() throws -> Never {
        guard ChaosNetwork.available else {
            say("cache-chaos: --network namespaces needs root, ip and iptables")
            Foundation.exit(2)
        }
        let network = try ChaosNetwork.create(count: nodes)
        var arguments = ["netns", "exec", network.harness, Self.sibling("cache-chaos")]
        arguments += Array(CommandLine.arguments.dropFirst()) + ["--inside-network", network.prefix]
        if nodeBinary == nil { arguments += ["--node-binary", Self.sibling("cache-node")] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ChaosNetwork.which("ip")!)
        process.arguments = arguments
        // The inner run is the one that prints; an interrupt reaches it through the process group.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            network.remove()
            say("cache-chaos: could not start inside the network: \(error)")
            Foundation.exit(2)
        }
        network.remove()
        Foundation.exit(process.terminationStatus)
    }

    /// A release node ignores `INJECT_BUG` (it has no such setting): a campaign meant to fail must
    /// not pass quietly on one. Debug builds take `--inject-bug`; release builds refuse the flag
    /// by name.
    static func checkInjectable(_ bug: String, by binary: URL) throws {
        guard ClusterNode.Configuration.InjectedBug(rawValue: bug) != nil else {
            let known = ClusterNode.Configuration.InjectedBug.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--inject-bug: '\(bug)' is not one of \(known)")
        }
        // An invalid port makes either build exit at once; only a release build names the flag.
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--inject-bug", bug, "--port", "-1"]
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard !output.contains("--inject-bug") else {
            throw ValidationError("\(binary.path) is not a test build and takes no injected bug (use a debug build)")
        }
    }

    /// An executable in this one's directory.
    static func sibling(_ name: String) -> String {
        let own =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent(name).path
    }
}
