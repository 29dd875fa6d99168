import Foundation
import Testing

/// A trait that lets only a few tests with real node processes run at once.
///
/// Swift Testing starts every suite at once. With a dozen suites that each run a three-node cluster
/// under load, a two-core machine (CI's) had forty debug processes fighting for it; a node then
/// took seconds to answer a peer, and quorum calls past the node's 1 s deadline failed tests that
/// judged the product, not the machine. Each test case takes a slot for its whole run and waits in
/// order for one to be free. `TEST_PROCESS_SLOTS` sets the width; by default, one per core (with
/// one more than the cores, CI's two cores were still loaded enough for quorum calls to miss it).
struct RealProcessSlots: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        await Self.slots.acquire()
        do {
            try await function()
        } catch {
            await Self.slots.release()
            throw error
        }
        await Self.slots.release()
    }

    private static let slots = Slots(
        width: ProcessInfo.processInfo.environment["TEST_PROCESS_SLOTS"].flatMap { Int($0) }
            ?? max(1, ProcessInfo.processInfo.activeProcessorCount))

    /// A counting semaphore whose waiters are served in the order they came.
    private actor Slots {
        private var free: Int
        private var waiting: [CheckedContinuation<Void, Never>] = []

        init(width: Int) {
            precondition(width > 0, "TEST_PROCESS_SLOTS must be positive")
            free = width
        }

        func acquire() async {
            if free > 0, waiting.isEmpty {
                free -= 1
                return
            }
            await withCheckedContinuation { waiting.append($0) }
        }

        func release() {
            if waiting.isEmpty {
                free += 1
            } else {
                // The slot passes straight to the first waiter.
                waiting.removeFirst().resume()
            }
        }
    }
}

extension Trait where Self == RealProcessSlots {
    /// Runs each test case in one of a few slots shared by every test with real node processes.
    static var realProcesses: Self { RealProcessSlots() }
}
