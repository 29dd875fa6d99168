import CacheCore
import Simulator
import Testing

@Suite("Deterministic simulator")
struct SimulatorTests {
    private func run(_ seed: UInt64, bug: Membership.Configuration.InjectedBug? = nil) -> SimulationResult {
        var options = MembershipSimulation.Options()
        options.injectedBug = bug
        var simulation = MembershipSimulation(seed: seed, options: options)
        return simulation.run()
    }

    @Test func replayingASeedGivesTheSameTrace() {
        let first = run(42)
        let second = run(42)
        #expect(first.traceHash == second.traceHash)
        #expect(first.events == second.events)
        #expect(first.events > 1000)
        #expect(run(43).traceHash != first.traceHash)
    }

    @Test func sweepPassesEveryChecker() {
        var failures: [String] = []
        for seed in UInt64(1)...40 {
            let result = run(seed)
            if !result.passed { failures.append(result.description) }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func ignoringIncarnationsIsCaughtBySomeSeed() {
        let caught = (UInt64(1)...40).contains { !run($0, bug: .ignoreIncarnations).passed }
        #expect(caught, "no seed caught a membership that ignores incarnation numbers")
    }
}
