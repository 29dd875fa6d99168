import Foundation
import Testing

/// cache-chaos against real nodes built with a deliberate bug: the campaign must fail, and fail in
/// the checker meant for that bug. (The clean campaign runs in make test on its own, unloaded:
/// its timeout checker judges latency, which a loaded test machine would fail.) Of the simulator's
/// bugs, these are the ones a 25 s campaign catches every time; the others need staleness that
/// real loopback rarely shows (docs/chaos.md).
@Suite("cache-chaos catches injected bugs", .realProcesses, .serialized, .timeLimit(.minutes(6)))
struct ChaosCampaignTests {
    /// Runs a campaign; returns its exit status and the checkers it reported VIOLATED.
    private func campaign(
        bug: String, seed: Int, faults: String, nodes: Int = 3
    ) async throws -> (Int32, Set<String>, String) {
        let chaos = NodeProcess.binary.deletingLastPathComponent().appendingPathComponent("cache-chaos")
        let run = try await runProgram(
            chaos,
            [
                "--seed", "\(seed)", "--nodes", "\(nodes)", "--duration", "25", "--faults", faults, "--inject-bug", bug,
                // Latency is not what these runs judge, and other tests share the machine.
                "--request-limit-ms", "60000",
            ],
            environment: ["SWIFT_BACKTRACE": "enable=no"])
        let violated = Set(
            run.stdout.split(separator: "\n").compactMap { line -> String? in
                guard line.hasSuffix(": VIOLATED") else { return nil }
                return line.dropLast(": VIOLATED".count).trimmingCharacters(in: .whitespaces)
            })
        return (run.status, violated, run.stdout)
    }

    /// Acknowledging a write once one replica holds it: the level checker sees successes at `all`
    /// (and `quorum`) while replicas were down or paused for the whole request. With 4 nodes each
    /// key's replicas are 3 of them, placed by the ring as the nodes place them.
    @Test(arguments: [3, 4])
    func aWriteAcknowledgedBelowItsLevelFailsTheLevelChecker(nodes: Int) async throws {
        let (status, violated, output) = try await campaign(
            bug: "acknowledge-below-level", seed: 5, faults: "kill,pause,kill-two", nodes: nodes)
        #expect(status == 1, "\(output)")
        // The level checker, and only it. (The lost write once seen beside it was the product's
        // own: a paused node made a write its client had retried elsewhere; writes now carry the
        // client's deadline.)
        #expect(violated == ["level"], "\(output)")
    }

    /// An unmet level answered 400 (an invalid request) instead of the documented 503 naming the
    /// level and the replicas that answered: the refusal checker, and only it, fails. The answer's
    /// shape is the driver's (the simulator sees the outcome the engine gives it, not the HTTP).
    @Test func anUnmetLevelMisreportedFailsTheRefusalChecker() async throws {
        let (status, violated, output) = try await campaign(
            bug: "misreport-unmet-level", seed: 6, faults: "kill-two,pause")
        #expect(status == 1, "\(output)")
        #expect(violated == ["refusal"], "\(output)")
    }
}
