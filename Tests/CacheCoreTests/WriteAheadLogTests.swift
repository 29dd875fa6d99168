import Testing

@testable import CacheCore

@Suite("Write-ahead log state")
struct WriteAheadLogTests {
    private let record = WALOperation.versioned(
        key: [1],
        entry: VersionedEntry(version: Version(wall: 1, logical: 0, node: NodeID("n")), value: nil, expiresAt: nil))

    @Test func alwaysAcknowledgesOnlyWhatIsSyncedWithOneSyncAtATime() {
        var log = WriteAheadLog(policy: .always, recoveredSequence: 10, logBytes: 0)
        guard case .append(let sequence, _) = log.append(record) else {
            Issue.record("refused")
            return
        }
        #expect(sequence == 11)
        #expect(!log.mayAcknowledge(11))
        #expect(log.nextSync(periodDue: false) == 11)
        // Group commit: while a sync runs, later records wait for the next one.
        _ = log.append(record)
        #expect(log.nextSync(periodDue: false) == nil)
        log.writeCompleted(upTo: 12)
        #expect(!log.mayAcknowledge(11))
        log.syncCompleted(upTo: 11)
        #expect(log.mayAcknowledge(11))
        #expect(!log.mayAcknowledge(12))
        #expect(log.nextSync(periodDue: false) == 12)
    }

    @Test(arguments: [SyncPolicy.interval(.milliseconds(100)), .none])
    func otherPoliciesAcknowledgeWhatIsWritten(policy: SyncPolicy) {
        var log = WriteAheadLog(policy: policy, recoveredSequence: 0, logBytes: 0)
        _ = log.append(record)
        #expect(!log.mayAcknowledge(1))
        log.writeCompleted(upTo: 1)
        #expect(log.mayAcknowledge(1))
        #expect(log.nextSync(periodDue: false) == nil)
        #expect(log.nextSync(periodDue: true) == (policy == .none ? nil : 1))
    }

    @Test func aFailedDiskRefusesWritesAndLeavesTheStoreUnchanged() {
        var node = StandaloneNode(now: now)
        node.put("a", "1")
        node.diskFailure = "No space left on device"
        // The write whose record the disk refused is not acknowledged, nor is any after it.
        #expect(node.put("b", "2") == .refused(reason: "No space left on device"))
        #expect(node.put("c", "3") == .refused(reason: "No space left on device"))
        #expect(node.delete("a") == .refused(reason: "No space left on device"))
        // a is durable and served (the refused delete never reached the store). b is in memory only:
        // its record was appended as the disk failed, and a crash would take it back. A read must
        // not show it (one read would see b, a read after the crash would not).
        #expect(node.value("a") == "1")
        guard case .unavailable = node.get("b") else {
            Issue.record("b, never durable, was served while the log had failed: \(String(describing: node.get("b")))")
            return
        }
        #expect(node.get("never-written") == .notFound)
        #expect(node.appended.map(\.sequence) == [1])
        // The node asks for a repair every second until the disk says the log is usable again.
        for _ in 0..<3 { node.advance(by: .seconds(1)) }
        #expect(node.repairs == 3)
        #expect(node.put("d", "4") == .refused(reason: "No space left on device"))
        node.diskFailure = nil
        node.advance(by: .seconds(1))
        #expect(node.repairs == 4)
        // The repair cut off b's record, but the store kept b: its entry is written again, so that
        // nothing the store holds (and a replica would vouch for) is missing from the log.
        #expect(node.node.statistics.entriesRewrittenAfterRepair == 1)
        #expect(node.appended.map(\.sequence) == [1, 2])
        if case .versioned(let key, let entry) = node.appended.last?.operation {
            #expect(key == Array("b".utf8) && entry.value == Array("2".utf8))
        } else {
            Issue.record("the last record is not b's entry: \(String(describing: node.appended.last))")
        }
        #expect(node.put("b", "3")?.isStored == true)
        #expect(node.value("b") == "3")
        #expect(node.appended.map(\.sequence) == [1, 2, 3])
    }

    @Test func compactionStartsOnlyWhenTheLogIsLargeAndMostlyDead() {
        var log = WriteAheadLog(
            policy: .none, compaction: CompactionPolicy(minimumLogBytes: 1000, minimumRatio: 2), recoveredSequence: 0,
            logBytes: 0)
        while log.logBytes < 1000 { _ = log.append(record) }
        #expect(log.startCompactionIfDue(liveBytes: log.logBytes) == nil)  // not twice the live data
        let covered = log.startCompactionIfDue(liveBytes: 100)
        #expect(covered == log.lastSequence)
        #expect(log.startCompactionIfDue(liveBytes: 100) == nil)  // one at a time
        _ = log.append(record)
        let written = log.logBytes
        log.compactionFinished()
        #expect(log.phase == .idle)
        #expect(log.logBytes == WALFormat.encode(WALRecord(sequence: log.lastSequence, operation: record)).count)
        #expect(written > log.logBytes)
    }

    @Test func aNodeSnapshotsItsStoreWhenTheLogIsDue() {
        var node = StandaloneNode(now: now, compaction: CompactionPolicy(minimumLogBytes: 2000, minimumRatio: 2))
        for index in 0..<100 { node.put("k", "value \(index)") }
        node.advance(by: .milliseconds(100))
        #expect(node.snapshots.count == 1)
        let snapshot = node.snapshots[0]
        #expect(snapshot.upTo == 100)
        var bytes: [UInt8] = []
        snapshot.encode { bytes += $0 }
        let outcome = Recovery.recover(
            snapshots: [.init(sequence: 100, bytes: bytes)], segments: [], limits: StoreLimits(), seed: 1,
            me: NodeID("solo"), now: node.now,
            maximumClockOffset: ClusterNode.Configuration.defaultMaximumClockOffset)
        #expect(outcome.store.stored(KeyReference(Array("k".utf8)))?.value == Array("value 99".utf8))
        // One at a time: no second snapshot until the first is reported.
        node.advance(by: .milliseconds(100))
        #expect(node.snapshots.count == 1)
        node.handle(.snapshotWritten(upTo: 100))
        #expect(node.node.log?.phase == .idle)
    }
}
