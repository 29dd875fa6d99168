import Foundation
import Simulator
import Synchronization

/// Runs simulations one at a time, each on a thread of its own.
///
/// A simulated run is seconds of CPU without a suspension point. On Swift's cooperative pool, which
/// is as wide as the machine (two threads in CI), two runs held every thread, and the tests in the
/// same `swift test` that wait on real processes stalled for a minute and timed out. On a thread of
/// its own a run shares the cores with them through the kernel's scheduler, and one at a time it
/// takes at most one core.
enum SimulationThread {
    private static let oneAtATime = Mutex<Void>(())

    /// `work`'s result, computed on a new thread once no other simulation runs. Expectations belong
    /// in the caller: the new thread is outside the test's task, so an issue recorded there would
    /// not be the test's.
    static func run<Result: Sendable>(_ work: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let result = oneAtATime.withLock { _ in work() }
                continuation.resume(returning: result)
            }
            thread.name = "simulation"
            thread.start()
        }
    }

    /// One run of `ClusterSimulation`.
    static func simulate(seed: UInt64, options: ClusterSimulation.Options) async -> SimulationResult {
        await run {
            var simulation = ClusterSimulation(seed: seed, options: options)
            return simulation.run()
        }
    }
}
