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
    @Option(help: "Simulated seconds with faults on.") var safetySeconds = 30
    @Flag(help: "Print every event of a single run.") var trace = false
    @Option(help: "Measure membership at this cluster size on a calm network instead of sweeping.")
    var scale: Int?
    @Option(
        help:
            "Inject a deliberate bug: \(Membership.Configuration.InjectedBug.allCases.map(\.rawValue).joined(separator: ", "))."
    )
    var injectBug: String?

    func run() throws {
        if let scale {
            let started = ContinuousClock.now
            var experiment = ScaleExperiment(seed: seed ?? 1)
            let result = experiment.run(nodes: scale)
            print("\(result) in \(started.duration(to: .now))")
            return
        }
        var options = MembershipSimulation.Options()
        options.nodes = nodes
        options.safetySeconds = safetySeconds
        options.trace = trace
        if let injectBug {
            guard let bug = Membership.Configuration.InjectedBug(rawValue: injectBug) else {
                throw ValidationError("unknown bug '\(injectBug)'")
            }
            options.injectedBug = bug
        }
        let range = seed.map { $0...$0 } ?? firstSeed...(firstSeed + UInt64(max(seeds, 1)) - 1)
        let started = ContinuousClock.now
        var failures = 0
        var events = 0
        for current in range {
            var simulation = MembershipSimulation(seed: current, options: options)
            let result = simulation.run()
            events += result.events
            if !result.passed { failures += 1 }
            if trace { for line in result.lastEvents { print(line) } }
            if seed != nil || !result.passed { print(result) }
        }
        let seconds =
            Double(started.duration(to: .now).components.attoseconds) / 1e18
            + Double(started.duration(to: .now).components.seconds)
        print(
            "\(range.count) seeds, \(failures) failed, \(events) events, "
                + "\(Int(Double(events) / max(seconds, 0.001))) events/s")
        if failures > 0 { throw ExitCode(1) }
    }
}
