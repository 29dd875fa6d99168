import CacheCore
import Simulator
import Testing

@Suite("Membership simulation")
struct MembershipSimulationTests {
    private func run(_ seed: UInt64, bug: Membership.Configuration.InjectedBug? = nil) async -> SimulationResult {
        var options = ClusterSimulation.Options()
        options.membershipOnly = true
        options.nodes = 5
        options.injectedMembershipBug = bug
        return await SimulationThread.simulate(seed: seed, options: options)
    }

    @Test func replayingASeedGivesTheSameTrace() async {
        _ = await expectReplaysExactly(seed: 42, otherSeed: 43, minimumEvents: 1000) { await run($0) }
    }

    @Test func sweepPassesEveryChecker() async {
        var failures: [String] = []
        for seed in UInt64(1)...40 {
            let result = await run(seed)
            if !result.passed { failures.append(result.description) }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func ignoringIncarnationsIsCaughtBySomeSeed() async {
        var caught = false
        for seed in UInt64(1)...40 where !caught { caught = await !run(seed, bug: .ignoreIncarnations).passed }
        #expect(caught, "no seed caught a membership that ignores incarnation numbers")
    }

    /// SWIM's promises at a size a debug build runs quickly: dissemination in O(log N) periods and
    /// a constant load per node. (docs/simulation.md has 10 to 1,000 nodes.)
    @Test func joinsSpreadInLogarithmicTimeAtConstantLoad() async throws {
        let result = await SimulationThread.run {
            var experiment = ScaleExperiment(seed: 1)
            return experiment.run(nodes: 64)
        }
        let joinPeriods = try #require(result.joinPeriods)
        let crashPeriods = try #require(result.crashPeriods)
        #expect(joinPeriods <= 3 * 6, "join took \(joinPeriods) periods for 64 nodes")
        // Detection and spread after a crash: the 5-period suspicion timeout plus a few periods.
        #expect(crashPeriods <= 5 + 3 * 6, "crash took \(crashPeriods) periods")
        #expect(result.messagesPerNodePerPeriod < 3)
        // docs/scaling.md's per-node figures: a ping and an ack of about 60 bytes each, plus two
        // full-state syncs every 10 periods (its own push-pull and its answer to one); a join changes rf/(N+1) of the keys' replica sets; a digest
        // round is at most every bucket's 10 bytes.
        let gossipBytes = 2 * 60 + 2 * Double(result.stateSyncBytes) / 10
        #expect(abs(result.bytesPerNodePerPeriod - gossipBytes) < gossipBytes * 0.2, "\(result)")
        #expect(abs(result.keysMovedOnJoin - 3.0 / 65) < 0.01, "\(result)")
        #expect(result.peersSharingKeys == 63, "\(result)")
        #expect(result.antiEntropyBytesPerNodePerSecond <= 5 + 10 * 1024, "\(result)")
        #expect(result.ringHeapBytes >= 12 * 1024 * 64, "\(result)")
    }
}
