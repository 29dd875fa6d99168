// libFuzzer target: everything that reads log directory bytes (segments, snapshots, recovery).
// Built together with CacheCore's sources into one module by `make fuzz`, so no import is needed.

@_cdecl("LLVMFuzzerTestOneInput")
public func walDecoderFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var records = 0
    let scan = WALSegment.scan(bytes) { _ in records += 1 }
    precondition(scan.validLength <= size && scan.records == records)
    precondition((scan.stop == nil) == (scan.validLength == size) || scan.firstSequence == nil)

    // Records decoded from any offset re-encode to exactly the bytes they came from.
    var offset = 0
    while case .record(let record, let next) = WALFormat.decode(bytes, at: offset) {
        precondition(next > offset && next <= size)
        precondition(WALFormat.encode(record).elementsEqual(bytes[offset..<next]))
        offset = next
    }

    _ = SnapshotFormat.read(bytes) { _ in }
    let copy = Array(bytes)
    let outcome = Recovery.recover(
        snapshots: [.init(sequence: 1, bytes: copy)], segments: [.init(firstSequence: 1, bytes: copy)],
        limits: StoreLimits(), seed: 1, me: NodeID("fuzz"), now: .epoch,
        maximumClockOffset: ClusterNode.Configuration.defaultMaximumClockOffset)
    precondition(outcome.report.droppedBytes <= size)
    // Whatever was recovered snapshots and recovers again to the same entries and members.
    var snapshot: [UInt8] = []
    LogSnapshot(upTo: 1, store: outcome.store, members: outcome.members, now: .epoch).encode { snapshot += $0 }
    let again = Recovery.recover(
        snapshots: [.init(sequence: 1, bytes: snapshot)], segments: [], limits: StoreLimits(), seed: 1,
        me: NodeID("fuzz"), now: .epoch,
        maximumClockOffset: ClusterNode.Configuration.defaultMaximumClockOffset)
    precondition(again.report.problems.isEmpty && again.store.count == outcome.store.count)
    precondition(again.members == outcome.members)
    return 0
}
