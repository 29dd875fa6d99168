import CacheCore

/// One node's log directory in memory: segments of bytes that are durable (synced) or only written
/// (in the operating system's buffer), and snapshots, which appear whole or not at all (the server
/// writes them to a temporary name and renames them once synced).
///
/// A process crash keeps what was written; a power loss keeps what was synced plus a random prefix of
/// the rest, which may end in a torn record. A restarted node recovers through the real `Recovery`.
struct SimulatedDisk {
    struct Segment {
        var durable: [UInt8]
        var written: [UInt8] = []
    }

    /// Segments by first sequence.
    private(set) var segments: [UInt64: Segment] = [:]
    /// Snapshots by the sequence they cover.
    private(set) var snapshots: [UInt64: [UInt8]] = [:]
    /// The segment being appended to.
    private(set) var current: UInt64?
    /// The last record appended (written) to the current segment.
    private(set) var lastAppended: UInt64 = 0

    /// The disk is full: every write, sync and snapshot fails until it is freed.
    var isFull = false
    /// The next sync fails (an I/O error), once.
    var failsNextSync = false
    /// The next snapshot cannot be written, once.
    var failsNextSnapshot = false
    /// The next start cannot read a segment (an I/O error at recovery), once: the server's
    /// recovery then fails and the process exits rather than serve a partial history.
    var failsNextRead = false

    /// Why the disk fails an operation now, if it does.
    static let fullReason = "No space left on device"
    static let ioErrorReason = "Input/output error"

    static func isDiskReason(_ reason: String) -> Bool { reason == fullReason || reason == ioErrorReason }

    /// Whether anything written is not yet synced.
    var hasUnsynced: Bool { segments.values.contains { !$0.written.isEmpty } }

    /// Starts a new segment whose first record will be `firstSequence` (its header synced at once).
    mutating func startSegment(firstSequence: UInt64) {
        segments[firstSequence] = Segment(durable: WALSegment.header(firstSequence: firstSequence))
        current = firstSequence
        lastAppended = firstSequence - 1
    }

    /// Writes a record to the current segment (it reaches the operating system, not the platter).
    mutating func append(sequence: UInt64, bytes: [UInt8]) {
        precondition(!isFull, "SimulatedDisk: a record written to a full disk")
        guard let current else { preconditionFailure("SimulatedDisk: append without a segment") }
        precondition(sequence > lastAppended, "SimulatedDisk: records out of order")
        segments[current]!.written.append(contentsOf: bytes)
        lastAppended = sequence
    }

    /// Syncs every segment: what was written becomes durable. Returns the bytes that became durable.
    @discardableResult
    mutating func sync() -> [UInt8] {
        var synced: [UInt8] = []
        for first in segments.keys.sorted() where !segments[first]!.written.isEmpty {
            synced += segments[first]!.written
            segments[first]!.durable += segments[first]!.written
            segments[first]!.written = []
        }
        return synced
    }

    /// Compaction's first step: the current segment is synced and a new one starts after `upTo`.
    /// Returns the bytes that became durable.
    mutating func rotate(after upTo: UInt64) -> [UInt8] {
        let synced = sync()
        startSegment(firstSequence: upTo + 1)
        return synced
    }

    /// Compaction's last step: the snapshot is durable, then the segments and snapshots it covers go.
    mutating func install(snapshot bytes: [UInt8], upTo: UInt64) {
        snapshots[upTo] = bytes
        let obsolete = Compaction.obsolete(segments: segments.keys, snapshots: snapshots.keys, coveredBy: upTo)
        for first in obsolete.segments { segments[first] = nil }
        for sequence in obsolete.snapshots { snapshots[sequence] = nil }
    }

    /// The process died: written bytes stay (the operating system has them), nothing else happens.
    mutating func processCrashed() {
        current = nil
    }

    /// The machine lost power: of what was written but not synced, each segment keeps a random prefix.
    mutating func powerLost(keeping prefix: (Int) -> Int) {
        for first in segments.keys.sorted() {
            let written = segments[first]!.written
            let kept = written.isEmpty ? 0 : prefix(written.count)
            segments[first]!.durable += written.prefix(kept)
            segments[first]!.written = []
        }
        current = nil
    }

    /// What recovery reads: every file as it now stands.
    var files: (snapshots: [Recovery.SnapshotFile], segments: [Recovery.SegmentFile]) {
        (
            snapshots.keys.sorted().map { Recovery.SnapshotFile(sequence: $0, bytes: snapshots[$0]!) },
            segments.keys.sorted().map {
                Recovery.SegmentFile(firstSequence: $0, bytes: segments[$0]!.durable + segments[$0]!.written)
            }
        )
    }

    /// Carries out what recovery asks (the server does the same to its directory).
    mutating func repair(_ repairs: [Recovery.Repair]) {
        // Everything recovery read is treated as durable from here on, as the server's fsync of the
        // directory makes it.
        _ = sync()
        for repair in repairs {
            switch repair {
            case .truncateSegment(let first, let length):
                if let segment = segments[first] { segments[first]!.durable = Array(segment.durable.prefix(length)) }
            case .quarantineSegment(let first), .deleteSegment(let first):
                segments[first] = nil
            case .quarantineSnapshot(let sequence):
                snapshots[sequence] = nil
            }
        }
    }
}
