import CacheCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The log directory at work for one node: carries out the log effects of `ClusterNode` and reports
/// their completion as inputs. Every decision (sequencing, when to sync, when to compact, when a
/// write may be acknowledged) is the node's; this type moves bytes.
///
/// Records are gathered during an event-loop turn and written with one `write(2)` at its end, as
/// Redis writes its AOF before it replies (`.logWritten` then releases the answers that waited).
/// Syncs run on a thread of their own (`.logSynced`); snapshots are written on another, in the
/// background (`.snapshotWritten`). On an error the node is told (`.logFailed`) and asks, once a
/// second, for a repair: the segment is cut back to its last whole record and synced.
///
/// Confined to the node's event loop, but for the bytes handed to the sync and snapshot threads.
final class LogFiles: LogDevice {
    /// The segment being appended to.
    private struct Segment {
        var descriptor: Int32
        var name: String
        /// Bytes in the file that are whole records (or the header).
        var length: Int
        /// The sequence of the last whole record in the file.
        var lastSequence: UInt64
    }

    let directory: LogDirectory
    private let loop: any EventLoop
    private let logger: Logger
    private var segment: Segment?
    /// Records appended in this event-loop turn, not yet written.
    private var buffer: [UInt8] = []
    private var bufferLastSequence: UInt64?
    private var flushScheduled = false
    /// A sync the node asked for, to start once the records before it are written.
    private var syncRequested: UInt64?
    private let syncThread: NIOThreadPool
    private let snapshotThread: NIOThreadPool
    /// Where completions go: the node's input, on the loop.
    private let report: (ClusterNode.Input) -> Void
    /// Snapshots written since start.
    private(set) var compactions = 0
    /// Where sync latencies are recorded.
    private let metrics: NodeMetrics?

    /// Opens `directory` for appending to a new segment whose first record is `firstSequence`.
    init(
        directory: LogDirectory, firstSequence: UInt64, loop: any EventLoop, logger: Logger,
        metrics: NodeMetrics? = nil, report: @escaping (ClusterNode.Input) -> Void
    ) throws(DiskError) {
        self.metrics = metrics
        self.directory = directory
        self.loop = loop
        self.logger = logger
        self.report = report
        let descriptor = try directory.createSegment(firstSequence: firstSequence)
        segment = Segment(
            descriptor: descriptor, name: directory.segmentName(firstSequence), length: WALSegment.headerSize,
            lastSequence: firstSequence - 1)
        syncThread = NIOThreadPool(numberOfThreads: 1)
        syncThread.start()
        snapshotThread = NIOThreadPool(numberOfThreads: 1)
        snapshotThread.start()
    }

    // MARK: Effects

    /// `.append`: the record goes out with the others of this turn (`.logWritten` then).
    func append(sequence: UInt64, bytes: [UInt8]) -> ClusterNode.Input? {
        loop.preconditionInEventLoop()
        precondition(bufferLastSequence.map { $0 < sequence } ?? true, "record \(sequence) appended out of order")
        precondition(!bytes.isEmpty, "record \(sequence) has no bytes")
        buffer.append(contentsOf: bytes)
        bufferLastSequence = sequence
        scheduleFlush()
        return nil
    }

    /// `.sync`: starts once the records before it are written.
    func sync(upTo sequence: UInt64) -> ClusterNode.Input? {
        loop.preconditionInEventLoop()
        syncRequested = max(syncRequested ?? 0, sequence)
        scheduleFlush()
        return nil
    }

    /// `.writeSnapshot`: writes what is buffered, syncs the segment and starts the next one after
    /// `snapshot.upTo` (the only moment requests wait for the disk: a few milliseconds), then writes the
    /// snapshot in the background and deletes the log it covers.
    func writeSnapshot(_ snapshot: LogSnapshot) -> ClusterNode.Input? {
        loop.preconditionInEventLoop()
        flush()
        guard var current = segment else { return .snapshotFailed(reason: "no log segment is open") }
        // The records the snapshot covers were written above, unless the disk failed just now.
        guard current.lastSequence >= snapshot.upTo else {
            return .snapshotFailed(reason: "the log before the snapshot could not be written")
        }
        do throws(DiskError) {
            guard fdatasync(current.descriptor) == 0 else {
                throw DiskError("fdatasync", directory.fullPath(current.name))
            }
            let first = snapshot.upTo + 1
            let descriptor = try directory.createSegment(firstSequence: first)
            Glibc.close(current.descriptor)
            current = Segment(
                descriptor: descriptor, name: directory.segmentName(first), length: WALSegment.headerSize,
                lastSequence: snapshot.upTo)
            segment = current
        } catch {
            failed(error)
            return .snapshotFailed(reason: error.description)
        }
        let directory = self.directory
        let loop = self.loop
        let logger = self.logger
        let report = NIOLoopBound(self.report, eventLoop: loop)
        let bound = NIOLoopBound(self, eventLoop: loop)
        snapshotThread.submit { _ in
            let result: ClusterNode.Input
            do {
                try Self.write(snapshot, to: directory)
                result = .snapshotWritten(upTo: snapshot.upTo)
                logger.info(
                    "compacted the log",
                    metadata: [
                        "snapshot_sequence": .number(Int(snapshot.upTo)), "entries": .number(snapshot.entryCount),
                    ])
            } catch {
                try? directory.remove(directory.snapshotName(snapshot.upTo) + ".tmp")
                logger.error("compaction failed", metadata: ["error": "\(error)"])
                result = .snapshotFailed(reason: "\(error)")
            }
            loop.execute {
                if case .snapshotWritten = result { bound.value.compactions += 1 }
                report.value(result)
            }
        }
        return nil
    }

    /// `.repairLog`: cuts the segment back to its last whole record and syncs it; if that works,
    /// the node takes writes again.
    func repair() -> ClusterNode.Input? {
        loop.preconditionInEventLoop()
        buffer = []
        bufferLastSequence = nil
        syncRequested = nil
        // Still failed: the node asks again in a second.
        guard let current = segment else { return nil }
        guard ftruncate(current.descriptor, off_t(current.length)) == 0, lseek(current.descriptor, 0, SEEK_END) >= 0,
            fdatasync(current.descriptor) == 0
        else { return nil }
        logger.notice(
            "write-ahead log usable again; accepting writes", metadata: ["kept_sequence": "\(current.lastSequence)"])
        return .logRepaired(keptSequence: current.lastSequence)
    }

    /// Writes what is buffered, syncs and closes the segment. On the loop; then `stopThreads()`.
    func close() {
        loop.preconditionInEventLoop()
        flush()
        if let current = segment {
            fdatasync(current.descriptor)
            Glibc.close(current.descriptor)
            segment = nil
        }
    }

    /// The threads that sync and write snapshots; stopped (off the loop) after `close()`.
    var threads: [NIOThreadPool] { [syncThread, snapshotThread] }

    // MARK: Writing

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Runs after the channel reads of this turn: one write for every record they made.
        loop.assumeIsolated().execute { self.flush() }
    }

    private func flush() {
        flushScheduled = false
        if let last = bufferLastSequence, !buffer.isEmpty {
            let bytes = buffer
            buffer.removeAll(keepingCapacity: true)
            bufferLastSequence = nil
            guard var current = segment else {
                failed(DiskError("write", directory.path, code: EIO))
                return
            }
            do throws(DiskError) {
                try LogDirectory.writeAll(current.descriptor, bytes, path: directory.fullPath(current.name))
                current.length += bytes.count
                current.lastSequence = last
                segment = current
                report(.logWritten(upTo: last))
            } catch {
                failed(error)
                return
            }
        }
        if let requested = syncRequested, let current = segment {
            syncRequested = nil
            startSync(upTo: min(requested, current.lastSequence), descriptor: current.descriptor, name: current.name)
        }
    }

    /// Syncs a duplicate of the descriptor on the sync thread, so appends go on meanwhile and a
    /// rotation cannot close the file under the sync.
    private func startSync(upTo sequence: UInt64, descriptor: Int32, name: String) {
        let duplicate = dup(descriptor)
        guard duplicate >= 0 else {
            failed(DiskError("dup", directory.fullPath(name)))
            return
        }
        let path = directory.fullPath(name)
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        let metrics = self.metrics
        syncThread.submit { _ in
            let started = ContinuousClock.now
            let synced = fdatasync(duplicate) == 0
            let elapsed = ContinuousClock.now - started
            metrics?.logSynced(nanoseconds: elapsed.nanoseconds)
            let code = errno
            Glibc.close(duplicate)
            loop.execute {
                if synced {
                    bound.value.report(.logSynced(upTo: sequence))
                } else {
                    bound.value.failed(DiskError("fdatasync", path, code: code))
                }
            }
        }
    }

    private func failed(_ error: DiskError) {
        buffer = []
        bufferLastSequence = nil
        logger.error("write-ahead log failed; refusing writes", metadata: ["error": "\(error)"])
        report(.logFailed(reason: error.description))
    }

    /// Writes `snapshot` to a temporary file, syncs it, renames it into place, syncs the directory,
    /// then deletes the segments and snapshots it covers. A crash at any step leaves a directory from
    /// which recovery gets everything back.
    private static func write(_ snapshot: LogSnapshot, to directory: LogDirectory) throws {
        let name = directory.snapshotName(snapshot.upTo)
        let temporary = directory.fullPath(name + ".tmp")
        let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw DiskError("create", temporary) }
        defer { Glibc.close(descriptor) }
        try snapshot.encode { chunk in try LogDirectory.writeAll(descriptor, chunk, path: temporary) }
        guard fdatasync(descriptor) == 0 else { throw DiskError("fdatasync", temporary) }
        try directory.rename(name + ".tmp", to: name)
        try directory.sync()
        let listing = try directory.listing()
        let obsolete = Compaction.obsolete(
            segments: listing.segments, snapshots: listing.snapshots, coveredBy: snapshot.upTo)
        for first in obsolete.segments { try directory.remove(directory.segmentName(first)) }
        for sequence in obsolete.snapshots { try directory.remove(directory.snapshotName(sequence)) }
        try directory.sync()
    }
}
