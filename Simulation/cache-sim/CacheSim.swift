import ArgumentParser
import CacheCore
import Simulator

/// `cache-sim`: runs the deterministic cluster simulator for one seed or a sweep of seeds.
@main
struct CacheSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-sim",
        abstract: "Runs CacheCore nodes under a seeded simulator and checks the guarantees.",
        discussion: """
            Each seed draws its cluster (3 to 7 nodes, replication factor, sync policy, limits) and its \
            faults. Every failure prints its seed; `cache-sim --seed N` replays that run exactly (same \
            trace hash).
            """)

    @Option(help: "Run exactly this seed.") var seed: UInt64?
    @Option(help: "How many seeds to sweep (from --first-seed).") var seeds = 100
    @Option(help: "First seed of a sweep.") var firstSeed: UInt64 = 1
    @Option(help: "Nodes per run (default: drawn from each seed, 3 to 7).") var nodes: Int?
    @Option(help: "Replication factor (default: drawn from each seed).") var replicationFactor: Int?
    @Option(help: "Simulated seconds with faults on (default: 20 for cluster runs, 30 for membership runs).")
    var safetySeconds: Int?
    @Flag(help: "Print every event of a single run.") var trace = false
    @Option(help: "Measure membership at this cluster size on a calm network instead of sweeping.")
    var scale: Int?
    @Option(
        help:
            "Measure what a cluster of this size costs (messages and bytes per operation, background traffic, load spread, a join's moves) instead of sweeping."
    )
    var cost: Int?
    @Option(
        help:
            "Inject a deliberate bug: \((Membership.Configuration.InjectedBug.allCases.map(\.rawValue) + ClusterNode.Configuration.InjectedBug.allCases.map(\.rawValue)).joined(separator: ", "))."
    )
    var injectBug: String?
    @Flag(help: "Run membership alone (no clients, no logs), with the membership checkers.")
    var membershipOnly = false
    @Option(help: "Client sessions issuing requests (cluster runs).") var clients = 4

    func validate() throws {
        if let nodes, !(1...128).contains(nodes) { throw ValidationError("--nodes must be 1 to 128") }
        if let replicationFactor, !(1...16).contains(replicationFactor) {
            throw ValidationError("--replication-factor must be 1 to 16")
        }
    }

    func run() throws {
        if let cost {
            let started = ContinuousClock.now
            let result = CostExperiment().run(nodes: cost, replicationFactor: replicationFactor ?? 3, seed: seed ?? 1)
            print("\(result) in \(started.duration(to: .now))")
            return
        }
        if let scale {
            let started = ContinuousClock.now
            var experiment = ScaleExperiment(seed: seed ?? 1)
            let result = experiment.run(nodes: scale)
            print("\(result) in \(started.duration(to: .now))")
            return
        }
        var options = ClusterSimulation.Options()
        options.nodes = nodes
        options.replicationFactor = replicationFactor
        options.safetySeconds = safetySeconds
        options.clients = clients
        options.trace = trace
        options.membershipOnly = membershipOnly
        if let injectBug {
            if let bug = Membership.Configuration.InjectedBug(rawValue: injectBug) {
                guard membershipOnly else { throw ValidationError("'\(injectBug)' needs --membership-only") }
                options.injectedMembershipBug = bug
            } else if let bug = ClusterNode.Configuration.InjectedBug(rawValue: injectBug) {
                options.injectedBug = bug
            } else {
                throw ValidationError("unknown bug '\(injectBug)'")
            }
        }
        let range = seed.map { $0...$0 } ?? firstSeed...(firstSeed + UInt64(max(seeds, 1)) - 1)
        let started = ContinuousClock.now
        var totals = SweepTotals()
        for current in range {
            var simulation = ClusterSimulation(seed: current, options: options)
            let result = simulation.run()
            totals.add(result)
            if trace { for line in result.lastEvents { print(line) } }
            if seed != nil || !result.passed { print(result) }
        }
        let elapsed = started.duration(to: .now)
        let seconds = elapsed.secondsValue
        let byNodes = totals.runsByNodeCount
        let counts = byNodes.keys.sorted().map { "\($0)×\(byNodes[$0]!)" }.joined(separator: " ")
        print(
            "\(range.count) \(membershipOnly ? "membership" : "cluster") seeds (nodes \(counts)), \(totals.failures) failed, "
                + "\(totals.events) events, \(totals.connections) peer connections "
                + "(\(totals.connectFailures) attempts failed, \(totals.refusals) frames refused while backing off), "
                + (membershipOnly
                    ? ""
                    : "\(totals.operations) client operations, "
                        + "\(totals.linearizable) key histories proved linearizable, "
                        + "\(totals.evictions) evictions, \(totals.snapshots) snapshots, "
                        + "\(totals.diskFaults) disk faults "
                        + "(\(totals.diskRefusals) writes refused, \(totals.repairs) log repairs, "
                        + "\(totals.readFailures) starts that could not read the log), "
                        + "power losses (always \(totals.powerLossesByPolicy["always", default: 0]), "
                        + "interval \(totals.powerLossesByPolicy["interval", default: 0]), "
                        + "none \(totals.powerLossesByPolicy["none", default: 0])), ")
                + "\(Int(Double(totals.events) / max(seconds, 0.001))) events/s")
        if totals.failures > 0 { throw ExitCode(1) }
    }
}
