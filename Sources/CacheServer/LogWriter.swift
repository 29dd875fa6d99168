import CacheCore
import DequeModule
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The node's storage, shared by the request path and the log writer.
final class SharedStorage: Sendable {
    let mutex: Mutex<NodeStorage>

    init(_ storage: NodeStorage) {
        mutex = Mutex(storage)
    }
}

/// The open log segment: records are written to it where they are made, and synced by a thread
/// of its own with group commit.
///
/// A record is written (`write(2)`) by the request's own thread while it holds the storage lock,
/// so the log's order is the store's order and, under `interval` and `none`, the answer can go out
/// at once, as Redis answers after writing its AOF. Under `always` the request waits for a sync:
/// the sync thread takes every record written so far, runs one `fdatasync` for all of them, reports
/// it to the `WriteAheadLog`, and completes the waits the log now allows, so concurrent writers
/// share a sync. On a write or sync error the disk is reported failed (writes are refused from then
/// on), waiting writes fail, and every second the segment is cut back to its last whole write so
/// that writes can resume.
final class LogWriter: Sendable {
    /// The segment being appended to.
    private struct Segment {
        var descriptor: Int32
        var name: String
        /// Bytes in the file that are whole records (or the header).
        var length: Int
        /// The sequence of the last whole record in the file.
        var lastSequence: UInt64
        var failed = false
    }

    private struct Waits {
        var waiters: Deque<(sequence: UInt64, promise: EventLoopPromise<Void>)> = []
        var syncScheduled = false
    }

    /// The group whose one thread syncs, retries after failures, and runs timers of the log.
    private let group: MultiThreadedEventLoopGroup
    private let loop: any EventLoop
    private let directory: LogDirectory
    private let storage: SharedStorage
    private let logger: Logger
    /// Lock order: the storage lock, then this one.
    private let segment: Mutex<Segment>
    private let waits = Mutex(Waits())

    /// A writer appending to the already created segment `descriptor` (named `name`, ending with
    /// the record `lastSequence`).
    init(
        directory: LogDirectory, storage: SharedStorage, descriptor: Int32, name: String, lastSequence: UInt64,
        policy: SyncPolicy, logger: Logger
    ) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        self.directory = directory
        self.storage = storage
        self.logger = logger
        segment = Mutex(
            Segment(descriptor: descriptor, name: name, length: WALSegment.headerSize, lastSequence: lastSequence))
        if case .interval(let milliseconds) = policy {
            loop.scheduleRepeatedTask(
                initialDelay: .milliseconds(Int64(milliseconds)), delay: .milliseconds(Int64(milliseconds))
            ) { [self] _ in sync() }
        }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            retryAfterFailure()
        }
    }

    /// Writes a record and tells the log. Called with the storage lock held (`log` is the locked
    /// log), so records reach the file in sequence order. On failure the log is marked failed.
    func write(_ bytes: [UInt8], sequence: UInt64, log: inout WriteAheadLog) -> Result<Void, DiskError> {
        let result = segment.withLock { segment -> Result<Void, DiskError> in
            guard !segment.failed else {
                return .failure(DiskError("write", directory.fullPath(segment.name), code: EIO))
            }
            do throws(DiskError) {
                try LogDirectory.writeAll(segment.descriptor, bytes, path: directory.fullPath(segment.name))
            } catch {
                segment.failed = true
                return .failure(error)
            }
            segment.length += bytes.count
            segment.lastSequence = sequence
            return .success(())
        }
        switch result {
        case .success: log.writeCompleted(upTo: sequence)
        case .failure(let error): failed(error, log: &log)
        }
        return result
    }

    /// Completes `promise` once the log allows the write `sequence` to be acknowledged (after the
    /// next sync), or fails it if the disk does. Called with the storage lock held.
    func awaitAcknowledgement(of sequence: UInt64, promise: EventLoopPromise<Void>) {
        let schedule = waits.withLock { waits in
            waits.waiters.append((sequence, promise))
            defer { waits.syncScheduled = true }
            return !waits.syncScheduled
        }
        if schedule { loop.execute { [self] in sync() } }
    }

    /// Switches to a new segment starting at `firstSequence`: syncs and closes the current one and
    /// creates the next. Called with the storage lock held, at that point in the history.
    func rotate(to firstSequence: UInt64, log: inout WriteAheadLog) -> Result<Void, DiskError> {
        let result = segment.withLock { segment -> Result<Void, DiskError> in
            guard !segment.failed else { return .failure(DiskError("rotate", directory.path, code: EIO)) }
            do throws(DiskError) {
                guard fdatasync(segment.descriptor) == 0 else {
                    throw DiskError("fdatasync", directory.fullPath(segment.name))
                }
                let descriptor = try directory.createSegment(firstSequence: firstSequence)
                close(segment.descriptor)
                segment = Segment(
                    descriptor: descriptor, name: directory.segmentName(firstSequence), length: WALSegment.headerSize,
                    lastSequence: firstSequence - 1)
                return .success(())
            } catch {
                segment.failed = true
                return .failure(error)
            }
        }
        if case .failure(let error) = result { failed(error, log: &log) }
        return result
    }

    /// Stops the writer: syncs what was written and closes the segment.
    func shutdown() async {
        try? await loop.submit { [self] in sync() }.get()
        segment.withLock { segment in
            if !segment.failed { fdatasync(segment.descriptor) }
            close(segment.descriptor)
            segment.failed = true
        }
        try? await group.shutdownGracefully()
    }

    // MARK: - On the sync thread

    /// One group commit: sync everything written so far, then release the writes it covers.
    private func sync() {
        waits.withLock { $0.syncScheduled = false }
        let written = storage.mutex.withLock { storage in storage.log!.needsSync ? storage.log!.writtenSequence : nil }
        if let written {
            // Sync a duplicate of the descriptor, so appends go on meanwhile and a rotation
            // cannot close the file under the sync.
            let (duplicate, name) = segment.withLock { ($0.failed ? -1 : dup($0.descriptor), $0.name) }
            guard duplicate >= 0 else {
                failWaiters(DiskError("fdatasync", directory.fullPath(name), code: EIO))
                return
            }
            let synced = fdatasync(duplicate) == 0
            let code = errno
            close(duplicate)
            storage.mutex.withLock { storage in
                if synced {
                    storage.log!.syncCompleted(upTo: written)
                } else {
                    segment.withLock { $0.failed = true }
                    failed(DiskError("fdatasync", directory.fullPath(name), code: code), log: &storage.log!)
                }
            }
        }
        let log = storage.mutex.withLock { $0.log! }
        let ready = waits.withLock { waits in
            var ready: [EventLoopPromise<Void>] = []
            while let first = waits.waiters.first, log.mayAcknowledge(first.sequence) {
                ready.append(waits.waiters.removeFirst().promise)
            }
            return ready
        }
        for promise in ready { promise.succeed(()) }
        if let failure = log.failure { failWaiters(DiskError("write-ahead log", failure, code: EIO)) }
    }

    /// Reports the disk failed and fails every write waiting for a sync.
    private func failed(_ error: DiskError, log: inout WriteAheadLog) {
        guard log.failure == nil else { return }
        log.diskFailed(error.description)
        loop.execute { [self] in failWaiters(error) }
        logger.error("write-ahead log failed; refusing writes", metadata: ["error": "\(error)"])
    }

    private func failWaiters(_ error: DiskError) {
        let waiting = waits.withLock { waits in
            defer { waits.waiters.removeAll() }
            return waits.waiters.map(\.promise)
        }
        for promise in waiting { promise.fail(error) }
    }

    /// After a failure: cut the segment back to its last whole write and sync it; if that works,
    /// writes resume.
    private func retryAfterFailure() {
        storage.mutex.withLock { storage in
            guard storage.log!.failure != nil else { return }
            let kept = segment.withLock { segment -> UInt64? in
                guard segment.failed, ftruncate(segment.descriptor, off_t(segment.length)) == 0,
                    lseek(segment.descriptor, 0, SEEK_END) >= 0, fdatasync(segment.descriptor) == 0
                else { return nil }
                segment.failed = false
                return segment.lastSequence
            }
            guard let kept else { return }
            storage.log!.diskRecovered(keptSequence: kept)
            logger.notice("write-ahead log usable again; accepting writes", metadata: ["kept_sequence": "\(kept)"])
        }
    }
}
