import CacheCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A node's log directory at work: recovery at start, the log writer, and compaction.
///
/// Every decision (what to replay, what to repair, when to compact, when a write may be answered)
/// is CacheCore's (`Recovery`, `WriteAheadLog`); this type reads and writes the files.
final class Persistence: Sendable {
    let directory: LogDirectory
    let writer: LogWriter
    let report: Recovery.Report
    private let storage: SharedStorage
    private let logger: Logger
    private let compactionThread: NIOThreadPool
    private let completedCompactions = Atomic<Int>(0)

    private init(
        directory: LogDirectory, writer: LogWriter, report: Recovery.Report, storage: SharedStorage, logger: Logger
    ) {
        self.directory = directory
        self.writer = writer
        self.report = report
        self.storage = storage
        self.logger = logger
        compactionThread = NIOThreadPool(numberOfThreads: 1)
        compactionThread.start()
    }

    /// Recovers the store from `path`, repairs what recovery asks, opens a new segment, and installs
    /// the recovered store and its log into `storage`. Blocking file work runs off the caller's thread.
    static func open(
        path: String, configuration: NodeConfiguration, storage: SharedStorage, seed: UInt64, now: Instant,
        logger: Logger
    ) async throws -> Persistence {
        try await NIOThreadPool.singleton.runIfActive {
            let directory = try LogDirectory(path: path)
            let listing = try directory.listing()
            let snapshots = try listing.snapshots.map {
                Recovery.SnapshotFile(sequence: $0, bytes: try directory.read(directory.snapshotName($0)))
            }
            let segments = try listing.segments.map {
                Recovery.SegmentFile(firstSequence: $0, bytes: try directory.read(directory.segmentName($0)))
            }
            let outcome = Recovery.recover(
                snapshots: snapshots, segments: segments, limits: configuration.storeLimits, seed: seed, now: now)
            for repair in outcome.repairs {
                switch repair {
                case .truncateSegment(let first, let length):
                    try directory.truncate(directory.segmentName(first), to: length)
                case .quarantineSegment(let first):
                    try directory.rename(directory.segmentName(first), to: directory.segmentName(first) + ".corrupt")
                case .quarantineSnapshot(let sequence):
                    try directory.rename(
                        directory.snapshotName(sequence), to: directory.snapshotName(sequence) + ".corrupt")
                case .deleteSegment(let first):
                    try directory.remove(directory.segmentName(first))
                }
            }
            try directory.sync()
            let report = outcome.report
            let firstSequence = report.lastSequence + 1
            let descriptor = try directory.createSegment(firstSequence: firstSequence)
            let log = WriteAheadLog(
                policy: configuration.syncPolicy, compaction: configuration.compactionPolicy,
                recoveredSequence: report.lastSequence, logBytes: report.logBytes)
            storage.mutex.withLock { $0 = NodeStorage(store: outcome.store, log: log) }
            let writer = LogWriter(
                directory: directory, storage: storage, descriptor: descriptor,
                name: directory.segmentName(firstSequence), lastSequence: report.lastSequence,
                policy: configuration.syncPolicy, logger: logger)
            return Persistence(directory: directory, writer: writer, report: report, storage: storage, logger: logger)
        }
    }

    /// How many compactions finished since start.
    var compactions: Int { completedCompactions.load(ordering: .relaxed) }

    /// Starts a compaction if the log is due one: under the storage lock, rotates the log to a new
    /// segment and takes the store's entries at that same point of the history; then, in the
    /// background, writes the snapshot (temporary file, sync, rename, sync the directory) and
    /// deletes the segments and snapshots it covers. A crash at any
    /// step leaves a directory from which recovery gets everything back.
    func compactIfDue(now: Instant) {
        let started = storage.mutex.withLock { storage -> (UInt64, [StoredEntry])? in
            guard let covered = storage.log?.startCompactionIfDue(liveBytes: storage.store.statistics.estimatedBytes)
            else {
                return nil
            }
            // The new segment starts right after the snapshot's last record, before any later write.
            guard case .success = writer.rotate(to: covered + 1, log: &storage.log!) else {
                storage.log!.compactionFailed()
                return nil
            }
            return (covered, storage.store.entries)
        }
        guard let (covered, entries) = started else { return }
        compactionThread.submit { [self] _ in
            do {
                try writeSnapshot(covering: covered, entries: entries, now: now)
                let listing = try directory.listing()
                for first in listing.segments where first <= covered {
                    try directory.remove(directory.segmentName(first))
                }
                for sequence in listing.snapshots where sequence < covered {
                    try directory.remove(directory.snapshotName(sequence))
                }
                try directory.sync()
                storage.mutex.withLock { $0.log!.compactionFinished() }
                completedCompactions.add(1, ordering: .relaxed)
                logger.info(
                    "compacted the log", metadata: ["snapshot_sequence": "\(covered)", "entries": "\(entries.count)"])
            } catch {
                try? directory.remove(directory.snapshotName(covered) + ".tmp")
                storage.mutex.withLock { $0.log!.compactionFailed() }
                logger.error("compaction failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func writeSnapshot(covering sequence: UInt64, entries: [StoredEntry], now: Instant) throws {
        let name = directory.snapshotName(sequence)
        let temporary = directory.fullPath(name + ".tmp")
        let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw DiskError("create", temporary) }
        defer { close(descriptor) }
        var buffer = SnapshotFormat.header(sequence: sequence)
        var count = 0
        for entry in entries where !entry.isExpired(at: now) {
            SnapshotFormat.appendEntry(entry, sequence: sequence, to: &buffer)
            count += 1
            if buffer.count >= 1 << 20 {
                try LogDirectory.writeAll(descriptor, buffer, path: temporary)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        SnapshotFormat.appendEnd(sequence: sequence, entryCount: count, to: &buffer)
        try LogDirectory.writeAll(descriptor, buffer, path: temporary)
        guard fdatasync(descriptor) == 0 else { throw DiskError("fdatasync", temporary) }
        try directory.rename(name + ".tmp", to: name)
        try directory.sync()
    }

    /// Stops compaction and the writer, syncing what was written.
    func shutdown() async {
        try? await compactionThread.shutdownGracefully()
        await writer.shutdown()
    }
}
