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

/// Appends log records to the current segment on a thread of its own, with group commit.
///
/// Requests hand over encoded records (in sequence order, under the storage lock) and a promise;
/// the writer takes everything queued, writes it with one `write`, syncs it with one `fdatasync`
/// when the policy asks, reports both to the `WriteAheadLog`, and completes the promises of every
/// write the log now allows to be acknowledged. While it writes, new records queue up for the next
/// round, so concurrent writers share a sync. On a write or sync error it reports the disk failed
/// (writes are refused from then on), fails the waiting promises, and tries every second to cut
/// the segment back to its last whole write so that writes can resume.
final class LogWriter: Sendable {
    private enum Item {
        case record(bytes: [UInt8], sequence: UInt64)
        /// Close the current segment and continue in a new one starting at `firstSequence`.
        case rotate(firstSequence: UInt64, done: EventLoopPromise<Void>)
    }

    private struct Queue {
        var items: [Item] = []
        var waiters: Deque<(sequence: UInt64, promise: EventLoopPromise<Void>)> = []
        var flushScheduled = false
    }

    /// The open segment; touched only on the writer's thread.
    private struct Segment {
        var descriptor: Int32
        var name: String
        /// Bytes in the file that are whole records (or the header).
        var length: Int
        /// The sequence of the last whole record in the file.
        var lastSequence: UInt64
        var failed = false
    }

    /// The group whose one thread does all blocking file work of the log.
    let group: MultiThreadedEventLoopGroup
    private let loop: any EventLoop
    private let directory: LogDirectory
    private let storage: SharedStorage
    private let logger: Logger
    private let queue = Mutex(Queue())
    private let segment: NIOLoopBoundBox<Segment>

    /// Starts a writer appending to the already created segment `descriptor` (named `name`, ending
    /// with the record `lastSequence`).
    init(
        directory: LogDirectory, storage: SharedStorage, descriptor: Int32, name: String, lastSequence: UInt64,
        policy: SyncPolicy, logger: Logger
    ) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        self.directory = directory
        self.storage = storage
        self.logger = logger
        segment = NIOLoopBoundBox.makeBoxSendingValue(
            Segment(descriptor: descriptor, name: name, length: WALSegment.headerSize, lastSequence: lastSequence),
            eventLoop: loop)
        if case .interval(let milliseconds) = policy {
            loop.scheduleRepeatedTask(
                initialDelay: .milliseconds(Int64(milliseconds)), delay: .milliseconds(Int64(milliseconds))
            ) {
                [self] _ in syncIfNeeded()
            }
        }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            retryAfterFailure()
        }
    }

    /// Queues a record; `waiter`, if any, completes when the write may be acknowledged. Must be
    /// called with the storage lock held, so that records queue in sequence order.
    func enqueue(bytes: [UInt8], sequence: UInt64, waiter: EventLoopPromise<Void>?) {
        enqueue(.record(bytes: bytes, sequence: sequence), waiter: waiter.map { (sequence, $0) })
    }

    /// Queues a switch to a new segment after everything queued so far. Must be called with the
    /// storage lock held, at the point in the history where the new segment starts.
    func enqueueRotation(firstSequence: UInt64) -> EventLoopFuture<Void> {
        let done = loop.makePromise(of: Void.self)
        enqueue(.rotate(firstSequence: firstSequence, done: done), waiter: nil)
        return done.futureResult
    }

    private func enqueue(_ item: Item, waiter: (UInt64, EventLoopPromise<Void>)?) {
        let schedule = queue.withLock { queue in
            queue.items.append(item)
            if let waiter { queue.waiters.append(waiter) }
            defer { queue.flushScheduled = true }
            return !queue.flushScheduled
        }
        if schedule { loop.execute { [self] in flush() } }
    }

    /// Stops the writer: syncs what was written and closes the segment.
    func shutdown() async {
        try? await loop.submit { [self] in
            flush()
            let current = segment.value
            if !current.failed { fdatasync(current.descriptor) }
            close(current.descriptor)
        }.get()
        try? await group.shutdownGracefully()
    }

    // MARK: - On the writer's thread

    private func flush() {
        while true {
            let items = queue.withLock { queue -> [Item] in
                if queue.items.isEmpty {
                    queue.flushScheduled = false
                    return []
                }
                defer { queue.items.removeAll(keepingCapacity: true) }
                return queue.items
            }
            if items.isEmpty { return }
            var batch: [UInt8] = []
            var batchSequence: UInt64?
            for item in items {
                switch item {
                case .record(let bytes, let sequence):
                    batch.append(contentsOf: bytes)
                    batchSequence = sequence
                case .rotate(let firstSequence, let done):
                    if let sequence = batchSequence { write(batch, upTo: sequence) }
                    batch.removeAll(keepingCapacity: true)
                    batchSequence = nil
                    rotate(to: firstSequence, done: done)
                }
            }
            if let sequence = batchSequence { write(batch, upTo: sequence) }
            releaseWaiters()
        }
    }

    private func write(_ bytes: [UInt8], upTo sequence: UInt64) {
        guard !segment.value.failed else { return }
        let path = directory.fullPath(segment.value.name)
        do throws(DiskError) {
            try LogDirectory.writeAll(segment.value.descriptor, bytes, path: path)
            segment.value.length += bytes.count
            segment.value.lastSequence = sequence
            let needsSync = storage.mutex.withLock { storage -> Bool in
                storage.log!.writeCompleted(upTo: sequence)
                return storage.log!.policy == .always
            }
            if needsSync {
                guard fdatasync(segment.value.descriptor) == 0 else { throw DiskError("fdatasync", path) }
                storage.mutex.withLock { $0.log!.syncCompleted(upTo: sequence) }
            }
        } catch {
            fail(error)
        }
    }

    private func syncIfNeeded() {
        guard !segment.value.failed else { return }
        let written = storage.mutex.withLock { storage in storage.log!.needsSync ? storage.log!.writtenSequence : nil }
        guard let written else { return }
        guard fdatasync(segment.value.descriptor) == 0 else {
            fail(DiskError("fdatasync", directory.fullPath(segment.value.name)))
            return
        }
        storage.mutex.withLock { $0.log!.syncCompleted(upTo: written) }
        releaseWaiters()
    }

    private func rotate(to firstSequence: UInt64, done: EventLoopPromise<Void>) {
        guard !segment.value.failed else {
            done.fail(DiskError("rotate", directory.path, code: EIO))
            return
        }
        do throws(DiskError) {
            guard fdatasync(segment.value.descriptor) == 0 else {
                throw DiskError("fdatasync", directory.fullPath(segment.value.name))
            }
            let descriptor = try directory.createSegment(firstSequence: firstSequence)
            close(segment.value.descriptor)
            segment.value = Segment(
                descriptor: descriptor, name: directory.segmentName(firstSequence), length: WALSegment.headerSize,
                lastSequence: firstSequence - 1)
            done.succeed(())
        } catch {
            fail(error)
            done.fail(error)
        }
    }

    private func releaseWaiters() {
        let log = storage.mutex.withLock { $0.log! }
        let ready = queue.withLock { queue in
            var ready: [EventLoopPromise<Void>] = []
            while let first = queue.waiters.first, log.mayAcknowledge(first.sequence) {
                ready.append(queue.waiters.removeFirst().promise)
            }
            return ready
        }
        for promise in ready { promise.succeed(()) }
    }

    private func fail(_ error: DiskError) {
        segment.value.failed = true
        storage.mutex.withLock { $0.log!.diskFailed(error.description) }
        let waiting = queue.withLock { queue in
            defer {
                queue.waiters.removeAll()
                queue.items.removeAll { if case .record = $0 { true } else { false } }
            }
            return queue.waiters.map(\.promise)
        }
        for promise in waiting { promise.fail(error) }
        logger.error("write-ahead log failed; refusing writes", metadata: ["error": "\(error)"])
    }

    /// After a failure: cut the segment back to its last whole write and sync it; if that works,
    /// writes resume.
    private func retryAfterFailure() {
        guard segment.value.failed else { return }
        let current = segment.value
        guard ftruncate(current.descriptor, off_t(current.length)) == 0, lseek(current.descriptor, 0, SEEK_END) >= 0,
            fdatasync(current.descriptor) == 0
        else { return }
        segment.value.failed = false
        storage.mutex.withLock { $0.log!.diskRecovered(keptSequence: current.lastSequence) }
        logger.notice("write-ahead log usable again; accepting writes", metadata: ["segment": "\(current.name)"])
    }
}
