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
        /// Records written by the single-node release (put and delete records, put snapshot
        /// entries) that were read and turned into versioned entries: the directory must be
        /// rewritten as a versioned snapshot before the node serves (a migration).
        public var legacyRecords = 0
        /// The greatest version recovered: the node's clock starts above it.
        public var newestVersion: Version?
        /// Members recovered from member records (`Outcome.members`).
        public var members = 0
    }

    /// The outcome: a store holding the recovered entries, what the node knew of the other members
    /// (the last member record of each, sorted by name), the report, and the repairs to make.
    public struct Outcome: Sendable {
        public var store: ReplicaStore
        public var members: [MemberUpdate]
        public var report: Report
        public var repairs: [Repair]
    }

    /// Recovers from `snapshots` and `segments` (any order) at time `now`, for the node `me` (whose
    /// name versions the entries of a legacy directory), into a store with `limits`. A store kept
    /// within tight limits may evict while it replays; `recordsEvictedKeys` keeps those keys for the
    /// node to report (the simulator's checkers need every eviction). `maximumClockOffset` must be
    /// the node's own setting, the bound it admitted versions by while it ran: a smaller one drops
    /// records it acknowledged (the simulator found that, with a default of 0.5 s here).
    public static func recover(
        snapshots: [SnapshotFile],
        segments: [SegmentFile],
        limits: StoreLimits,
        seed: UInt64,
        me: NodeID,
        now: Instant,
        maximumClockOffset: Duration,
        recordsEvictedKeys: Bool = false
    ) -> Outcome {
        var report = Report()
        var repairs: [Repair] = []
        func emptyStore() -> ReplicaStore {
            ReplicaStore(limits: limits, seed: seed, recordsEvictedKeys: recordsEvictedKeys)
        }
        var replay = Replay(store: emptyStore(), me: me, now: now, maximumOffset: maximumClockOffset)

        // The newest snapshot that is whole wins; damaged ones are set aside.
        var snapshotSequence: UInt64 = 0
        for snapshot in snapshots.sorted(by: { $0.sequence > $1.sequence }) {
            var candidate = Replay(store: emptyStore(), me: me, now: now, maximumOffset: maximumClockOffset)
            let result = snapshot.bytes.withUnsafeBytes { bytes in
                SnapshotFormat.read(bytes) { operation in candidate.apply(operation) }
            }
            switch result {
            case .success(let (sequence, entries)) where sequence == snapshot.sequence:
                assert(entries >= candidate.expired, "Recovery: more expired than read from a snapshot")
                assert(entries >= candidate.expired + candidate.members.count, "Recovery: more read than counted")
                replay = candidate
                snapshotSequence = sequence
                report.snapshotSequence = sequence
                report.snapshotEntries = entries - candidate.expired - candidate.members.count
                report.expiredDropped += candidate.expired
                replay.expired = 0
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
            // A header naming another sequence is checked before any record is replayed: the
            // segment is set aside, and none of it may reach the store.
            let named = segment.bytes.withUnsafeBytes { WALSegment.readFileHeader($0, magic: WALSegment.magic) }
            var lastSequence = report.lastSequence
            var replayed = 0
            let scan = segment.bytes.withUnsafeBytes { bytes in
                WALSegment.scan(bytes) { record in
                    guard case .success(segment.firstSequence) = named else { return }
                    guard record.sequence > lastSequence else { return }
                    lastSequence = record.sequence
                    replayed += 1
                    replay.apply(record.operation)
                }
            }
            if scan.firstSequence.map({ $0 != segment.firstSequence }) == true {
                damaged = true
                report.droppedBytes += segment.bytes.count
                report.problems.append("segment \(segment.firstSequence): header names another sequence")
                repairs.append(.quarantineSegment(firstSequence: segment.firstSequence))
                continue
            }
            assert(lastSequence >= report.lastSequence, "Recovery: the last sequence went back")
            assert(scan.validLength <= segment.bytes.count, "Recovery: a valid prefix past the file")
            report.replayedRecords += replayed
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
        report.expiredDropped += replay.expired
        report.legacyRecords = replay.legacy
        report.newestVersion = replay.newest
        report.members = replay.members.count
        assert(report.droppedBytes >= 0 && report.logBytes >= 0, "Recovery: negative byte counts")
        assert(
            repairs.allSatisfy {
                if case .truncateSegment(_, let length) = $0 { return length >= WALSegment.headerSize }
                return true
            }, "Recovery: a segment cut inside its header")
        if replay.ahead > 0 {
            report.problems.append(
                "\(replay.ahead) records whose version is ahead of this node's clock by more than "
                    + "\(maximumClockOffset) ignored (a peer's clock or a forged frame)")
        }
        let members = replay.members.values.sorted { $0.id < $1.id }
        return Outcome(store: replay.store, members: members, report: report, repairs: repairs)
    }

    /// Applies records to a store in log order.
    ///
    /// Versioned records carry their own order (the greatest version wins, whatever the order they
    /// are met in). Records of the single-node release carry none: each is given the next reading of
    /// a clock that starts at `now` under this node's name, so that later records win as they did.
    struct Replay {
        var store: ReplicaStore
        var clock: HybridClock
        let now: Instant
        var expired = 0
        var legacy = 0
        var newest: Version?
        let maximumOffset: Duration
        /// Versioned records ignored because their version was too far ahead of `now`.
        var ahead = 0
        /// The last member record of each member (a later one replaces an earlier: log order is the
        /// order the node learnt things in).
        var members: [NodeID: MemberUpdate] = [:]

        init(store: ReplicaStore, me: NodeID, now: Instant, maximumOffset: Duration) {
            self.store = store
            self.clock = HybridClock(node: me)
            self.now = now
            self.maximumOffset = maximumOffset
        }

        mutating func apply(_ operation: WALOperation) {
            let key: [UInt8]
            let entry: VersionedEntry
            switch operation {
            case .member(let update):
                members[update.id] = update
                return
            case .dropped(let droppedKey, let version):
                store.remove(KeyReference(droppedKey), ifVersion: version)
                return
            case .versioned(let versionedKey, let versioned):
                key = versionedKey
                entry = versioned
                // A version from a clock far ahead (a peer's, or a forged frame's, stored by an
                // earlier release) would outrank every later write: it is not brought back.
                // Legacy records met after versioned ones (never in a real directory) come after them.
                guard clock.observe(versioned.version, now: now, maximumOffset: maximumOffset) else {
                    ahead += 1
                    return
                }
            case .put(let putKey, let value, let expiresAt):
                legacy += 1
                key = putKey
                entry = VersionedEntry(version: clock.next(physical: now), value: value, expiresAt: expiresAt)
            case .delete(let deleteKey):
                legacy += 1
                key = deleteKey
                entry = VersionedEntry(version: clock.next(physical: now), value: nil, expiresAt: nil)
            }
            if entry.value != nil, !entry.isLive(at: now) { expired += 1 }
            if newest.map({ $0 < entry.version }) ?? true { newest = entry.version }
            store.apply(KeyReference(key), entry, now: now)
            // What was applied is at least as new as the record: the store keeps the greatest version.
            assert(
                store.stored(KeyReference(key)).map { !($0.version < entry.version) } ?? true,
                "Recovery: a record's entry lost to an older one")
        }
    }
}
