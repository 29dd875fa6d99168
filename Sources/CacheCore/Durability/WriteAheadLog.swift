/// When the log is forced to stable storage, and so when a write may be acknowledged.
public enum SyncPolicy: Equatable, Sendable, CustomStringConvertible {
    /// Every write is answered only after an fsync that covers it returned.
    case always
    /// Writes are answered once handed to the operating system; an fsync runs every `period`, so a
    /// power loss loses at most that window of answered writes (a process crash loses none).
    case interval(Duration)
    /// Writes are answered once handed to the operating system, which decides when they reach the
    /// disk; a process crash loses none, a power loss may lose any not yet written back.
    case none

    public var description: String {
        switch self {
        case .always: "always"
        case .interval(let period): "interval(\(period.nanoseconds / 1_000_000)ms)"
        case .none: "none"
        }
    }
}

/// When the log is rewritten as a snapshot.
public struct CompactionPolicy: Equatable, Sendable {
    /// No compaction before the log since the last snapshot holds this many bytes.
    public var minimumLogBytes: Int
    /// ... and is at least this many times the live data's size.
    public var minimumRatio: Int

    /// Creates a policy; the defaults compact at 64 MiB of log when it is twice the live data.
    public init(minimumLogBytes: Int = 64 << 20, minimumRatio: Int = 2) {
        self.minimumLogBytes = minimumLogBytes
        self.minimumRatio = minimumRatio
    }
}

/// The write-ahead log's bookkeeping: sequence numbers, what is written and synced, the rule for
/// acknowledging a write, when to compact, and whether the disk has failed.
///
/// The driver carries out the effects (append bytes, fsync, write a snapshot, rotate a segment)
/// and reports their completion back; every decision about them is made here, so the simulator
/// and the server make the same ones.
public struct WriteAheadLog: Sendable {
    /// Where compaction stands.
    public enum Phase: Equatable, Sendable {
        /// No compaction running.
        case idle
        /// A snapshot covering every record up to `upTo` is being written.
        case compacting(upTo: UInt64)
    }

    /// The answer to an append.
    public enum Append: Equatable, Sendable {
        /// Append `bytes` to the current segment; the write has this `sequence`.
        case append(sequence: UInt64, bytes: [UInt8])
        /// The disk has failed: the write must be refused and the store left unchanged.
        case refused(reason: String)
    }

    public let policy: SyncPolicy
    public let compaction: CompactionPolicy
    /// The sequence of the last record appended (0 before any).
    public private(set) var lastSequence: UInt64
    /// Every record up to here has been handed to the operating system.
    public private(set) var writtenSequence: UInt64
    /// Every record up to here is on stable storage.
    public private(set) var syncedSequence: UInt64
    /// Bytes of log not covered by the newest snapshot.
    public private(set) var logBytes: Int
    /// Compaction's state.
    public private(set) var phase = Phase.idle
    /// Why writes are refused, while the disk is failing.
    public private(set) var failure: String?
    /// A sync asked of the driver and not yet reported done: it covers every record up to here.
    public private(set) var syncInFlight: UInt64?

    /// A log that continues after `recoveredSequence`, with `logBytes` of log already on disk
    /// beyond the newest snapshot. Everything recovered is, by definition, written and synced.
    public init(
        policy: SyncPolicy, compaction: CompactionPolicy = CompactionPolicy(), recoveredSequence: UInt64, logBytes: Int
    ) {
        self.policy = policy
        self.compaction = compaction
        self.lastSequence = recoveredSequence
        self.writtenSequence = recoveredSequence
        self.syncedSequence = recoveredSequence
        self.logBytes = logBytes
        precondition(logBytes >= 0, "WriteAheadLog: \(logBytes) bytes of log")
        checkInvariants()
    }

    /// Durability comes in order: synced, then written, then appended.
    private func checkInvariants() {
        assert(syncedSequence <= writtenSequence, "WriteAheadLog: synced past what was written")
        assert(writtenSequence <= lastSequence, "WriteAheadLog: written past what was appended")
        assert(syncInFlight.map { $0 > syncedSequence && $0 <= lastSequence } ?? true, "WriteAheadLog: a stray sync")
        assert(logBytes >= 0, "WriteAheadLog: negative log bytes")
    }

    /// Assigns the next sequence to `operation` and encodes its record, or refuses it while the disk
    /// is failing. The log holds versioned entries, drops and members; the single-node release's
    /// records are only ever read.
    public mutating func append(_ operation: WALOperation) -> Append {
        switch operation {
        case .versioned, .dropped, .member: break
        case .put, .delete: preconditionFailure("the log takes only versioned, dropped and member records")
        }
        if let failure { return .refused(reason: failure) }
        lastSequence += 1
        let bytes = WALFormat.encode(WALRecord(sequence: lastSequence, operation: operation))
        logBytes += bytes.count
        assert(!mayAcknowledge(lastSequence), "WriteAheadLog: a record durable before it was written")
        checkInvariants()
        return .append(sequence: lastSequence, bytes: bytes)
    }

    /// The driver handed every record up to `sequence` to the operating system.
    public mutating func writeCompleted(upTo sequence: UInt64) {
        precondition(sequence <= lastSequence, "writeCompleted past the last appended record")
        writtenSequence = max(writtenSequence, sequence)
        checkInvariants()
    }

    /// An fsync covering every record up to `sequence` returned.
    public mutating func syncCompleted(upTo sequence: UInt64) {
        precondition(sequence <= writtenSequence, "syncCompleted past what was written")
        syncedSequence = max(syncedSequence, sequence)
        if let inFlight = syncInFlight, sequence >= inFlight { syncInFlight = nil }
        checkInvariants()
    }

    /// The sync to ask of the driver now, if any (group commit: at most one at a time, each covering
    /// everything appended before it). Under `always`, whenever records wait for one; under
    /// `interval`, when the interval has elapsed (`periodDue`) and something written is unsynced;
    /// never under `none`.
    public mutating func nextSync(periodDue: Bool) -> UInt64? {
        guard failure == nil, syncInFlight == nil else { return nil }
        let upTo: UInt64
        switch policy {
        case .always:
            upTo = lastSequence
        case .interval:
            guard periodDue else { return nil }
            upTo = writtenSequence
        case .none:
            return nil
        }
        guard upTo > syncedSequence else { return nil }
        precondition(upTo <= lastSequence, "WriteAheadLog: a sync past the last record")
        syncInFlight = upTo
        return upTo
    }

    /// Whether the write with `sequence` may be answered: the node never acknowledges a write that
    /// is not durable under its policy.
    public func mayAcknowledge(_ sequence: UInt64) -> Bool {
        switch policy {
        case .always: sequence <= syncedSequence
        case .interval, .none: sequence <= writtenSequence
        }
    }

    /// A write or fsync failed: refuse writes from now on, until the disk is usable again.
    /// Writes appended but not yet acknowledged must be answered with an error.
    public mutating func diskFailed(_ reason: String) {
        failure = reason
        syncInFlight = nil
    }

    /// The disk accepted writes again: the driver cut the segment back so that it ends with the
    /// record `keptSequence`. Records appended after it are forgotten; their writes were answered
    /// with an error, never acknowledged.
    public mutating func diskRecovered(keptSequence: UInt64) {
        precondition(keptSequence <= lastSequence, "diskRecovered keeps records never appended")
        failure = nil
        syncInFlight = nil
        lastSequence = keptSequence
        writtenSequence = min(writtenSequence, keptSequence)
        syncedSequence = min(syncedSequence, keptSequence)
        checkInvariants()
    }

    /// Starts a compaction when the log is large enough and no compaction runs. Returns the
    /// sequence the snapshot covers: the driver takes the store's entries and rotates to a new
    /// segment at this point, before any later write.
    public mutating func startCompactionIfDue(liveBytes: Int, force: Bool = false) -> UInt64? {
        guard phase == .idle, failure == nil else { return nil }
        guard
            force
                || (logBytes >= compaction.minimumLogBytes && logBytes >= compaction.minimumRatio * max(liveBytes, 1))
        else { return nil }
        phase = .compacting(upTo: lastSequence)
        logBytesAtCompaction = logBytes
        return lastSequence
    }

    /// The snapshot is durable and the segments it covers are gone: only the log written since
    /// counts from now on.
    public mutating func compactionFinished() {
        guard case .compacting = phase else { preconditionFailure("compactionFinished while \(phase)") }
        precondition(logBytesAtCompaction <= logBytes, "WriteAheadLog: a snapshot covering more log than written")
        logBytes -= logBytesAtCompaction
        phase = .idle
    }

    /// The snapshot could not be written: the log stays as it was and may be compacted again later.
    public mutating func compactionFailed() {
        guard case .compacting = phase else { preconditionFailure("compactionFailed while \(phase)") }
        phase = .idle
    }

    private var logBytesAtCompaction = 0
}
