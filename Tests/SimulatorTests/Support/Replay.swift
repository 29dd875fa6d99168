import Simulator
import Testing

/// The replay promise, checked alike for every kind of run: `seed` run twice gives the same trace
/// hash and event count (and more than `minimumEvents`), and `otherSeed` another trace.
func expectReplaysExactly(
    seed: UInt64, otherSeed: UInt64, minimumEvents: Int, sourceLocation: SourceLocation = #_sourceLocation,
    _ run: (UInt64) async -> SimulationResult
) async -> SimulationResult {
    let first = await run(seed)
    let second = await run(seed)
    #expect(first.traceHash == second.traceHash, "seed \(seed) replayed differently", sourceLocation: sourceLocation)
    #expect(first.events == second.events, sourceLocation: sourceLocation)
    #expect(first.events > minimumEvents, "seed \(seed): \(first.events) events", sourceLocation: sourceLocation)
    #expect(await run(otherSeed).traceHash != first.traceHash, sourceLocation: sourceLocation)
    return first
}
