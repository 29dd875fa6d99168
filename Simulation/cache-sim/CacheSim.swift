import ArgumentParser
import CacheCore
import Simulator

/// `cache-sim`: runs the deterministic cluster simulator for one seed or a sweep of seeds.
@main
struct CacheSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-sim",
        abstract: "Runs CacheCore nodes under a seeded simulator and checks the guarantees.",
        discussion: "Every failure prints its seed; `cache-sim --seed N` replays that run exactly (same trace hash).")

    @Option(help: "Run exactly this seed.") var seed: UInt64?
    @Option(help: "How many seeds to sweep (from --first-seed).") var seeds = 100
    @Option(help: "First seed of a sweep.") var firstSeed: UInt64 = 1
    @Option(help: "Nodes per run.") var nodes = 5
    @Option(help: "Simulated seconds with faults on (default: 20 for cluster runs, 30 for membership runs).")
    var safetySeconds: Int?
    @Flag(help: "Print every event of a single run.") var trace = false
    @Option(help: "Measure membership at this cluster size on a calm network instead of sweeping.")
    var scale: Int?
    @Option(
        help:
            "Inject a deliberate bug: \((Membership.Configuration.InjectedBug.allCases.map(\.rawValue) + ClusterNode.Configuration.InjectedBug.allCases.map(\.rawValue)).joined(separator: ", "))."
    )
    var injectBug: String?
    @Flag(help: "Run membership alone (no replication, no clients), as the membership checks need.")
    var membershipOnly = false
    @Option(help: "Client sessions issuing requests (cluster runs).") var clients = 4

    func run() throws {
        if let scale {
            let started = ContinuousClock.now
            var experiment = ScaleExperiment(seed: seed ?? 1)
            let result = experiment.run(nodes: scale)
            print("\(result) in \(started.duration(to: .now))")
            return
        }
        let runOne = try runner()
        let range = seed.map { $0...$0 } ?? firstSeed...(firstSeed + UInt64(max(seeds, 1)) - 1)
        let started = ContinuousClock.now
        var failures = 0
        var events = 0
        var operations = 0
        var linearizable = 0
        for current in range {
            let result = runOne(current)
            events += result.events
            operations += result.operations
            linearizable += result.linearizabilityChecked
            if !result.passed { failures += 1 }
            if trace { for line in result.lastEvents { print(line) } }
            if seed != nil || !result.passed { print(result) }
        }
        let seconds =
            Double(started.duration(to: .now).components.attoseconds) / 1e18
            + Double(started.duration(to: .now).components.seconds)
        print(
            "\(range.count) \(membershipOnly ? "membership" : "cluster") seeds, \(failures) failed, \(events) events, "
                + (membershipOnly
                    ? "" : "\(operations) client operations, \(linearizable) key histories proved linearizable, ")
                + "\(Int(Double(events) / max(seconds, 0.001))) events/s")
        if failures > 0 { throw ExitCode(1) }
    }

    /// The simulation to run per seed, as the options say.
    private func runner() throws -> (UInt64) -> SimulationResult {
        if membershipOnly {
            var options = MembershipSimulation.Options()
            options.nodes = nodes
            if let safetySeconds { options.safetySeconds = safetySeconds }
            options.trace = trace
            if let injectBug {
                guard let bug = Membership.Configuration.InjectedBug(rawValue: injectBug) else {
                    throw ValidationError("unknown membership bug '\(injectBug)'")
                }
                options.injectedBug = bug
            }
            return { seed in
                var simulation = MembershipSimulation(seed: seed, options: options)
                return simulation.run()
            }
        }
        var options = ClusterSimulation.Options()
        options.nodes = nodes
        if let safetySeconds { options.safetySeconds = safetySeconds }
        options.clients = clients
        options.trace = trace
        if let injectBug {
            guard let bug = ClusterNode.Configuration.InjectedBug(rawValue: injectBug) else {
                throw ValidationError("unknown cluster bug '\(injectBug)' (membership bugs need --membership-only)")
            }
            options.injectedBug = bug
        }
        return { seed in
            var simulation = ClusterSimulation(seed: seed, options: options)
            return simulation.run()
        }
    }
}
