/// Rebuilds a store from what a node's log directory holds, and says what to repair.
///
/// Input is the bytes of the snapshots and segments; output is the store, a report, and the
/// repairs the driver must carry out before writing again. It keeps every whole record before the
/// first bad one and never serves an entry whose expiry passed while the node was down.
public struct Recovery {
    /// A snapshot file as found: the sequence in its name and its bytes.
    public struct SnapshotFile: Sendable {
        public var sequence: UInt64
        public var bytes: [UInt8]
        public init(sequence: UInt64, bytes: [UInt8]) {
            self.sequence = sequence
            self.bytes = bytes
        }
    }

    /// A segment file as found: the first sequence in its name and its bytes.
    public struct SegmentFile: Sendable {
        public var firstSequence: UInt64
        public var bytes: [UInt8]
        public init(firstSequence: UInt64, bytes: [UInt8]) {
            self.firstSequence = firstSequence
            self.bytes = bytes
        }
    }

    /// A change the driver must make to the directory before the node writes again.
    public enum Repair: Equatable, Sendable {
        /// Cut the segment back to its valid prefix (a torn or damaged tail); always at least a whole header.
        case truncateSegment(firstSequence: UInt64, toLength: Int)
        /// Set the segment aside: it follows a damaged one, so its records cannot be trusted to
        /// continue the history.
        case quarantineSegment(firstSequence: UInt64)
        /// Set the snapshot aside: it is not whole.
        case quarantineSnapshot(sequence: UInt64)
        /// Delete the segment: every record in it is covered by the snapshot in use, or its header is torn.
        case deleteSegment(firstSequence: UInt64)
    }

    /// What recovery found and did, for the log and `/stats`.
    public struct Report: Equatable, Sendable {
        /// The sequence of the snapshot loaded, if any.
        public var snapshotSequence: UInt64?
        /// Entries loaded from it.
        public var snapshotEntries = 0
        /// Log records replayed after it.
        public var replayedRecords = 0
        /// Snapshot entries and log puts not loaded because their expiry had passed.
        public var expiredDropped = 0
        /// Bytes of log cut off or set aside as torn or damaged.
        public var droppedBytes = 0
        /// One line per problem found.
        public var problems: [String] = []
        /// The last sequence recovered; new records continue after it.
        public var lastSequence: UInt64 = 0
        /// Bytes of log kept beyond the snapshot.
        public var logBytes = 0
    }

    /// The outcome: a store holding the recovered entries, the report, and the repairs to make.
    public struct Outcome {
        public var store: CacheStore
        public var report: Report
        public var repairs: [Repair]
    }

    /// Recovers from `snapshots` and `segments` (any order) at time `now`.
    public static func recover(
        snapshots: [SnapshotFile],
        segments: [SegmentFile],
        limits: StoreLimits,
        seed: UInt64,
        now: Instant
    ) -> Outcome {
        var report = Report()
        var repairs: [Repair] = []
        var store = CacheStore(limits: limits, policy: SampledLRU(), seed: seed)

        // The newest snapshot that is whole wins; damaged ones are set aside.
        var snapshotSequence: UInt64 = 0
        for snapshot in snapshots.sorted(by: { $0.sequence > $1.sequence }) {
            var candidate = CacheStore(limits: limits, policy: SampledLRU(), seed: seed)
            var expired = 0
            let result = snapshot.bytes.withUnsafeBytes { bytes in
                SnapshotFormat.read(bytes) { key, value, expiresAt in
                    if let expiresAt, expiresAt <= now {
                        expired += 1
                    } else {
                        _ = candidate.put(CacheKey(bytes: key), value: value, expiresAt: expiresAt, now: now)
                    }
                }
            }
            switch result {
            case .success(let (sequence, entries)) where sequence == snapshot.sequence:
                store = candidate
                snapshotSequence = sequence
                report.snapshotSequence = sequence
                report.snapshotEntries = entries - expired
                report.expiredDropped += expired
            case .success(let (sequence, _)):
                report.problems.append("snapshot \(snapshot.sequence): header says \(sequence)")
                repairs.append(.quarantineSnapshot(sequence: snapshot.sequence))
                continue
            case .failure(let stop):
                report.problems.append("snapshot \(snapshot.sequence): \(stop)")
                repairs.append(.quarantineSnapshot(sequence: snapshot.sequence))
                continue
            }
            break
        }
        report.lastSequence = snapshotSequence

        // Replay the segments in order; the first damaged record ends the history.
        let ordered = segments.sorted { $0.firstSequence < $1.firstSequence }
        var damaged = false
        for (index, segment) in ordered.enumerated() {
            if damaged {
                report.droppedBytes += segment.bytes.count
                report.problems.append("segment \(segment.firstSequence): set aside after a damaged segment")
                repairs.append(.quarantineSegment(firstSequence: segment.firstSequence))
                continue
            }
            // A segment wholly covered by the snapshot: the next segment starts at or before it.
            if index + 1 < ordered.count, ordered[index + 1].firstSequence <= snapshotSequence + 1 {
                repairs.append(.deleteSegment(firstSequence: segment.firstSequence))
                continue
            }
            var lastSequence = report.lastSequence
            var replayed = 0
            var expired = 0
            let scan = segment.bytes.withUnsafeBytes { bytes in
                WALSegment.scan(bytes) { record in
                    guard record.sequence > lastSequence else { return }
                    lastSequence = record.sequence
                    replayed += 1
                    if store.replay(record.operation, now: now) == .expired { expired += 1 }
                }
            }
            if scan.firstSequence.map({ $0 != segment.firstSequence }) == true {
                damaged = true
                report.droppedBytes += segment.bytes.count
                report.problems.append("segment \(segment.firstSequence): header names another sequence")
                repairs.append(.quarantineSegment(firstSequence: segment.firstSequence))
                continue
            }
            report.replayedRecords += replayed
            report.expiredDropped += expired
            report.lastSequence = lastSequence
            report.logBytes += scan.validLength
            if let stop = scan.stop {
                damaged = true
                let dropped = segment.bytes.count - scan.validLength
                report.droppedBytes += dropped
                report.problems.append("segment \(segment.firstSequence): \(stop); \(dropped) bytes dropped")
                // A segment whose header is not even whole holds nothing: delete it, do not cut it.
                repairs.append(
                    scan.validLength < WALSegment.headerSize
                        ? .deleteSegment(firstSequence: segment.firstSequence)
                        : .truncateSegment(firstSequence: segment.firstSequence, toLength: scan.validLength))
            }
        }
        store.resetCounters()
        return Outcome(store: store, report: report, repairs: repairs)
    }
}

extension Store {
    /// What replaying one operation did.
    public enum ReplayOutcome: Equatable, Sendable {
        case applied
        /// A put whose expiry has passed: the key is left absent.
        case expired
    }

    /// Applies an operation read back from the log. A put that has already expired removes the key,
    /// since it replaced whatever was there before.
    @discardableResult
    public mutating func replay(_ operation: WALOperation, now: Instant) -> ReplayOutcome {
        switch operation {
        case .put(let key, let value, let expiresAt):
            if let expiresAt, expiresAt <= now {
                _ = delete(CacheKey(bytes: key), now: now)
                return .expired
            }
            _ = put(CacheKey(bytes: key), value: value, expiresAt: expiresAt, now: now)
            return .applied
        case .delete(let key):
            _ = delete(CacheKey(bytes: key), now: now)
            return .applied
        case .versioned(let key, let entry):
            // A plain store keeps no versions: the record is replayed as the put or delete it was.
            if let value = entry.value {
                return replay(.put(key: key, value: value, expiresAt: entry.expiresAt), now: now)
            }
            return replay(.delete(key: key), now: now)
        }
    }
}
