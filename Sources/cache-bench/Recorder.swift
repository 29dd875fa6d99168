import CacheClient
import Foundation
import Histogram
import Synchronization

/// How one request ended.
enum Outcome: Sendable {
    case hit, miss, stored, deleted, absent
    case error(String)
    case timeout
}

/// Every latency and outcome of a run, in HdrHistograms (microseconds, 3 significant digits), per
/// operation for the whole measured period and for all operations per second of the run.
final class Recorder: Sendable {
    struct Figures: Sendable {
        var latency = Recorder.makeHistogram()
        var count = 0
        var hits = 0
        var misses = 0
        var errors = 0
        var timeouts = 0

        mutating func record(_ outcome: Outcome, microseconds: UInt64) {
            count += 1
            switch outcome {
            case .hit: hits += 1
            case .miss: misses += 1
            case .error: errors += 1
            case .timeout: timeouts += 1
            case .stored, .deleted, .absent: break
            }
            _ = latency.record(max(1, microseconds))
        }

        mutating func add(_ other: Figures) {
            latency.add(other.latency)
            count += other.count
            hits += other.hits
            misses += other.misses
            errors += other.errors
            timeouts += other.timeouts
        }
    }

    /// One second of the run (all operations).
    struct Second: Sendable {
        var index: Int
        var figures: Figures
    }

    private struct State {
        var operations: [Workload.Operation: Figures] = [:]
        var current = Figures()
        var currentIndex = 0
        var seconds: [Second] = []
        var errorMessages: [String: Int] = [:]
    }

    private let state = Mutex(State())

    static func makeHistogram() -> Histogram<UInt64> {
        // 1 µs to 100 s.
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: .three)
    }

    /// Records a request that was meant to start in second `second` of the measured period.
    func record(_ operation: Workload.Operation, _ outcome: Outcome, microseconds: UInt64, second: Int) {
        state.withLock { state in
            state.operations[operation, default: Figures()].record(outcome, microseconds: microseconds)
            if second != state.currentIndex {
                closeSecond(&state, upTo: second)
            }
            state.current.record(outcome, microseconds: microseconds)
            if case .error(let message) = outcome, state.errorMessages.count < 20 || state.errorMessages[message] != nil
            {
                state.errorMessages[message, default: 0] += 1
            }
        }
    }

    private func closeSecond(_ state: inout State, upTo second: Int) {
        guard second > state.currentIndex else { return }
        state.seconds.append(Second(index: state.currentIndex, figures: state.current))
        state.current = Figures()
        state.currentIndex = second
    }

    /// The last complete second, once a new one has begun (for the progress line).
    func takeSecond(after index: Int) -> Second? {
        state.withLock { state in state.seconds.last.flatMap { $0.index > index ? $0 : nil } }
    }

    /// Closes the seconds up to `second` (the run's clock moved on with no request finishing).
    func tick(second: Int) {
        state.withLock { closeSecond(&$0, upTo: second) }
    }

    /// Everything recorded.
    func results() -> (operations: [Workload.Operation: Figures], seconds: [Second], errors: [String: Int]) {
        state.withLock { state in
            var seconds = state.seconds
            if state.current.count > 0 { seconds.append(Second(index: state.currentIndex, figures: state.current)) }
            return (state.operations, seconds, state.errorMessages)
        }
    }
}

extension Histogram<UInt64> {
    /// The value at `percentile`, in milliseconds.
    func milliseconds(at percentile: Double) -> Double {
        totalCount == 0 ? 0 : Double(valueAtPercentile(percentile)) / 1000
    }

    var maximumMilliseconds: Double { totalCount == 0 ? 0 : Double(max) / 1000 }
}
