import Testing

@testable import CacheCore

private let now = Instant(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)

private func randomOperation(_ random: inout SplitMix64) -> WALOperation {
    let key = (0..<random.below(12) + 1).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    if random.below(4) == 0 { return .delete(key: key) }
    let value = (0..<random.below(64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    let expiresAt: Instant? =
        random.below(2) == 0 ? nil : Instant(nanosecondsSinceEpoch: Int64(bitPattern: random.next()))
    if random.below(3) == 0 {
        let version = Version(
            wall: Int64(bitPattern: random.next()), logical: UInt32(truncatingIfNeeded: random.next()),
            node: NodeID("node-\(random.below(100))"))
        if random.below(4) == 0 { return .dropped(key: key, version: version) }
        return .versioned(
            key: key,
            entry: VersionedEntry(version: version, value: random.below(4) == 0 ? nil : value, expiresAt: expiresAt))
    }
    return .put(key: key, value: value, expiresAt: expiresAt)
}

private func segment(_ records: [WALRecord], firstSequence: UInt64 = 1) -> [UInt8] {
    var bytes = WALSegment.header(firstSequence: firstSequence)
    for record in records { WALFormat.encode(record, into: &bytes) }
    return bytes
}

private func scan(_ bytes: [UInt8]) -> ([WALRecord], WALSegment.Scan) {
    var records: [WALRecord] = []
    let result = bytes.withUnsafeBytes { WALSegment.scan($0) { records.append($0) } }
    return (records, result)
}

@Suite("WAL and snapshot codecs")
struct WALCodecTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        let whole = CRC32C.checksum(Array("hello, world".utf8))
        let first = CRC32C.checksum(Array("hello, ".utf8))
        #expect(Array("world".utf8).withUnsafeBytes { CRC32C.checksum($0, continuing: first) } == whole)
    }

    @Test(arguments: 0..<10)
    func randomRecordSequencesRoundTrip(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let records = (1...200).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let (decoded, result) = scan(segment(records))
        #expect(decoded == records)
        #expect(result.stop == nil)
        #expect(result.lastSequence == 200)
    }

    @Test func everyPrefixRecoversExactlyTheWholeRecordsInsideIt() {
        var random = SplitMix64(seed: 7)
        let records = (1...30).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let bytes = segment(records)
        // Where each record ends.
        var ends: [Int] = []
        var offset = WALSegment.headerSize
        for record in records {
            offset += WALFormat.encode(record).count
            ends.append(offset)
        }
        for length in 0...bytes.count {
            let (decoded, result) = scan(Array(bytes[..<length]))
            let whole = ends.filter { $0 <= length }.count
            #expect(decoded == Array(records.prefix(whole)), "prefix \(length)")
            if length >= WALSegment.headerSize {
                #expect(result.validLength == (whole == 0 ? WALSegment.headerSize : ends[whole - 1]))
            }
            let atBoundary = length == WALSegment.headerSize || ends.contains(length)
            #expect((result.stop == nil) == atBoundary, "prefix \(length): \(String(describing: result.stop))")
        }
    }

    @Test func flippingAnyByteIsDetected() {
        var random = SplitMix64(seed: 11)
        let records = (1...12).map { WALRecord(sequence: UInt64($0), operation: randomOperation(&random)) }
        let bytes = segment(records)
        var starts: [Int] = []
        var offset = WALSegment.headerSize
        for record in records {
            starts.append(offset)
            offset += WALFormat.encode(record).count
        }
        for position in 0..<bytes.count {
            for bit in [0, 3, 7] {
                var damaged = bytes
                damaged[position] ^= 1 << bit
                let (decoded, result) = scan(damaged)
                #expect(result.stop != nil, "flip at \(position) bit \(bit) went unnoticed")
                // Every record before the damaged one survives, none after it is returned.
                let damagedRecord = starts.lastIndex(where: { $0 <= position }) ?? -1
                let intact = max(0, damagedRecord)
                #expect(decoded == Array(records.prefix(intact)), "flip at \(position)")
            }
        }
    }

    @Test func outOfOrderSequencesAreCorrupt() {
        let records = [
            WALRecord(sequence: 5, operation: .delete(key: [1])), WALRecord(sequence: 4, operation: .delete(key: [2])),
        ]
        let (decoded, result) = scan(segment(records, firstSequence: 5))
        #expect(decoded.count == 1)
        guard case .corrupt = result.stop else {
            Issue.record("expected corrupt, got \(String(describing: result.stop))")
            return
        }
    }

    @Test func oversizedLengthIsCorruptNotATrap() {
        var bytes = WALSegment.header(firstSequence: 1)
        bytes += [0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 32)
        let (decoded, result) = scan(bytes)
        #expect(decoded.isEmpty)
        #expect(result.stop == .corrupt(offset: WALSegment.headerSize, reason: "record length 2147483647 out of range"))
    }

    @Test func snapshotRoundTripsAndMustBeWhole() throws {
        var entries: [(key: [UInt8], entry: VersionedEntry)] = []
        for index in 0..<50 {
            let version = Version(wall: Int64(index), logical: UInt32(index % 3), node: NodeID("n\(index % 4)"))
            let expiry: Instant? = index % 3 == 0 ? now.advanced(bySeconds: 60) : nil
            let value: [UInt8]? = index % 5 == 0 ? nil : Array("v\(index)".utf8)
            entries.append((Array("k\(index)".utf8), VersionedEntry(version: version, value: value, expiresAt: expiry)))
        }
        let bytes = SnapshotFormat.encode(sequence: 99, entries: entries)
        var loaded: [WALOperation] = []
        let result = bytes.withUnsafeBytes { bytes in SnapshotFormat.read(bytes) { loaded.append($0) } }
        let header = try result.get()
        #expect(header.sequence == 99 && header.entries == 50)
        #expect(loaded == entries.map { .versioned(key: $0.key, entry: $0.entry) })
        // Any strict prefix is refused: a snapshot without its end record is not a snapshot.
        for length in stride(from: 0, to: bytes.count, by: 7) {
            let prefix = Array(bytes[..<length])
            let partial = prefix.withUnsafeBytes { SnapshotFormat.read($0) { _ in } }
            #expect(throws: ScanStop.self) { try partial.get() }
        }
    }
}

@Suite("Recovery")
struct RecoveryTests {
    private func recover(
        snapshots: [Recovery.SnapshotFile] = [], segments: [Recovery.SegmentFile], at time: Instant = now
    ) -> Recovery.Outcome {
        Recovery.recover(
            snapshots: snapshots, segments: segments, limits: StoreLimits(), seed: 1, me: NodeID("me"), now: time)
    }

    /// The value `key` holds live at `time`, if any.
    private func value(_ store: ReplicaStore, _ key: String, at time: Instant = now) -> String? {
        guard let entry = store.stored(KeyReference(Array(key.utf8))), entry.isLive(at: time) else { return nil }
        return entry.value.map { String(decoding: $0, as: UTF8.self) }
    }

    private func put(_ sequence: UInt64, _ key: String, _ value: String, expiresAt: Instant? = nil) -> WALRecord {
        WALRecord(
            sequence: sequence, operation: .put(key: Array(key.utf8), value: Array(value.utf8), expiresAt: expiresAt))
    }

    private func delete(_ sequence: UInt64, _ key: String) -> WALRecord {
        WALRecord(sequence: sequence, operation: .delete(key: Array(key.utf8)))
    }

    private func versioned(
        _ sequence: UInt64, _ key: String, _ value: String?, wall: Int64, expiresAt: Instant? = nil
    ) -> WALRecord {
        let entry = VersionedEntry(
            version: Version(wall: wall, logical: 0, node: NodeID("n")), value: value.map { Array($0.utf8) },
            expiresAt: expiresAt)
        return WALRecord(sequence: sequence, operation: .versioned(key: Array(key.utf8), entry: entry))
    }

    @Test func versionedRecordsKeepTheNewestVersionWhateverTheirOrder() {
        let records = [
            versioned(1, "a", "new", wall: 20), versioned(2, "a", "old", wall: 10), versioned(3, "b", "1", wall: 5),
            versioned(4, "b", nil, wall: 6),
        ]
        let outcome = recover(segments: [.init(firstSequence: 1, bytes: segment(records))])
        #expect(value(outcome.store, "a") == "new")
        #expect(value(outcome.store, "b") == nil)
        // The delete stays as a tombstone until the node knows it is alone (then it drops them).
        #expect(outcome.store.stored(KeyReference(Array("b".utf8)))?.hasValue == false)
        #expect(outcome.report.newestVersion == Version(wall: 20, logical: 0, node: NodeID("n")))
        #expect(outcome.report.legacyRecords == 0)
    }

    /// A drop removes the entry only at the version it names: a newer write logged before it stays,
    /// and a write logged after it comes back as it did live.
    @Test func droppedRecordsRemoveExactlyTheVersionTheyName() {
        func dropped(_ sequence: UInt64, _ key: String, wall: Int64) -> WALRecord {
            WALRecord(
                sequence: sequence,
                operation: .dropped(key: Array(key.utf8), version: Version(wall: wall, logical: 0, node: NodeID("n"))))
        }
        let records = [
            versioned(1, "a", "1", wall: 10), dropped(2, "a", wall: 10), versioned(3, "b", "1", wall: 10),
            versioned(4, "b", "2", wall: 20), dropped(5, "b", wall: 10), versioned(6, "c", "1", wall: 10),
            dropped(7, "c", wall: 10), versioned(8, "c", "old", wall: 5),
        ]
        let outcome = recover(segments: [.init(firstSequence: 1, bytes: segment(records))])
        #expect(outcome.store.stored(KeyReference(Array("a".utf8))) == nil)
        #expect(value(outcome.store, "b") == "2")
        #expect(value(outcome.store, "c") == "old")
        #expect(outcome.report.lastSequence == 8)
    }

    @Test func legacyRecordsReplayInOrderAndDeletesStayDeleted() {
        let records = [put(1, "a", "1"), put(2, "b", "2"), delete(3, "a"), put(4, "b", "3")]
        let outcome = recover(segments: [.init(firstSequence: 1, bytes: segment(records))])
        #expect(value(outcome.store, "a") == nil)
        #expect(value(outcome.store, "b") == "3")
        #expect(outcome.report.lastSequence == 4)
        #expect(outcome.report.replayedRecords == 4)
        #expect(outcome.report.legacyRecords == 4)
        #expect(outcome.repairs.isEmpty)
        // Migrated entries are versioned by this node's clock, later records above earlier ones.
        #expect(outcome.store.stored(KeyReference(Array("b".utf8)))?.version.node == NodeID("me"))
    }

    @Test func entriesThatExpiredWhileDownAreNotServed() {
        let records = [
            put(1, "gone", "x", expiresAt: now.advanced(bySeconds: -1)),
            put(2, "kept", "y", expiresAt: now.advanced(bySeconds: 60)),
            put(3, "replaced", "old"), put(4, "replaced", "new", expiresAt: now.advanced(bySeconds: -5)),
        ]
        let outcome = recover(segments: [.init(firstSequence: 1, bytes: segment(records))])
        #expect(value(outcome.store, "gone") == nil)
        #expect(value(outcome.store, "kept") == "y")
        #expect(value(outcome.store, "replaced") == nil)
        #expect(outcome.report.expiredDropped == 2)
    }

    @Test func tornTailIsTruncatedAndWholeRecordsKept() {
        let bytes = segment([put(1, "a", "1"), put(2, "b", "2")])
        let torn = Array(bytes.dropLast(3))
        let outcome = recover(segments: [.init(firstSequence: 1, bytes: torn)])
        #expect(value(outcome.store, "a") == "1")
        #expect(value(outcome.store, "b") == nil)
        #expect(outcome.report.lastSequence == 1)
        let firstEnd = WALSegment.headerSize + WALFormat.encode(put(1, "a", "1")).count
        #expect(outcome.repairs == [.truncateSegment(firstSequence: 1, toLength: firstEnd)])
        #expect(outcome.report.droppedBytes == torn.count - firstEnd)
    }

    @Test func segmentWithATornHeaderIsDeletedNotCut() {
        let whole = segment([put(1, "a", "1")])
        let torn = segment([], firstSequence: 2).prefix(WALSegment.headerSize - 3)
        let outcome = recover(segments: [
            .init(firstSequence: 1, bytes: whole), .init(firstSequence: 2, bytes: Array(torn)),
        ])
        #expect(value(outcome.store, "a") == "1")
        #expect(outcome.repairs == [.deleteSegment(firstSequence: 2)])
        #expect(outcome.report.lastSequence == 1)
    }

    @Test func segmentsAfterADamagedOneAreSetAside() {
        var first = segment([put(1, "a", "1"), put(2, "b", "2")])
        first[first.count - 2] ^= 0xFF
        let second = segment([put(3, "c", "3")], firstSequence: 3)
        let outcome = recover(segments: [.init(firstSequence: 3, bytes: second), .init(firstSequence: 1, bytes: first)])
        #expect(value(outcome.store, "a") == "1")
        #expect(value(outcome.store, "c") == nil)
        #expect(outcome.repairs.contains(.quarantineSegment(firstSequence: 3)))
        #expect(outcome.report.problems.count == 2)
    }

    @Test(arguments: [false, true])
    func restartAfterCompactionEqualsRestartBefore(legacy: Bool) {
        var random = SplitMix64(seed: 5)
        var records: [WALRecord] = []
        for sequence in 1...400 {
            let key = "k\(random.below(50))"
            let expiresAt = random.below(3) == 0 ? now.advanced(bySeconds: Int64(random.below(100)) - 50) : nil
            let isDelete = random.below(5) == 0
            if legacy {
                records.append(
                    isDelete
                        ? delete(UInt64(sequence), key)
                        : put(UInt64(sequence), key, "v\(sequence)", expiresAt: expiresAt))
            } else {
                records.append(
                    versioned(
                        UInt64(sequence), key, isDelete ? nil : "v\(sequence)", wall: Int64(random.below(1000)),
                        expiresAt: expiresAt))
            }
        }
        let segments: [Recovery.SegmentFile] = [
            .init(firstSequence: 1, bytes: segment(Array(records[0..<250]))),
            .init(firstSequence: 251, bytes: segment(Array(records[250...]), firstSequence: 251)),
        ]
        let before = recover(segments: segments)
        // Compaction at 250: a snapshot of the store as of 250, then the rest of the log.
        let atCompaction = recover(segments: [.init(firstSequence: 1, bytes: segment(Array(records[0..<250])))])
        var snapshotBytes: [UInt8] = []
        LogSnapshot(upTo: 250, store: atCompaction.store, now: now).encode { snapshotBytes += $0 }
        let after = recover(snapshots: [.init(sequence: 250, bytes: snapshotBytes)], segments: segments)
        #expect(after.repairs == [.deleteSegment(firstSequence: 1)])
        func contents(_ store: ReplicaStore) -> [String: String] {
            var result: [String: String] = [:]
            for key in store.sortedKeys {
                result[key.description] = value(store, key.description)
            }
            return result.filter { !$0.value.isEmpty }
        }
        #expect(contents(after.store) == contents(before.store))
        #expect(after.report.lastSequence == before.report.lastSequence)
    }

    @Test func damagedNewestSnapshotFallsBackToAnOlderOne() {
        let entry = VersionedEntry(
            version: Version(wall: 1, logical: 0, node: NodeID("n")), value: Array("1".utf8), expiresAt: nil)
        let old = SnapshotFormat.encode(sequence: 1, entries: [(Array("a".utf8), entry)])
        var newer = SnapshotFormat.encode(sequence: 2, entries: [])
        newer.removeLast()
        let outcome = recover(
            snapshots: [.init(sequence: 2, bytes: newer), .init(sequence: 1, bytes: old)],
            segments: [.init(firstSequence: 2, bytes: segment([versioned(2, "b", "2", wall: 2)], firstSequence: 2))])
        #expect(outcome.report.snapshotSequence == 1)
        #expect(outcome.repairs.contains(.quarantineSnapshot(sequence: 2)))
        #expect(value(outcome.store, "a") == "1")
        #expect(value(outcome.store, "b") == "2")
    }
}

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

    @Test(arguments: [SyncPolicy.interval(milliseconds: 100), .none])
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
        node.carryOut(node.node.handle(.logFailed(reason: "No space left on device"), now: node.now))
        #expect(node.put("b", "2") == .refused(reason: "No space left on device"))
        #expect(node.delete("a") == .refused(reason: "No space left on device"))
        #expect(node.value("a") == "1")
        #expect(node.node.statistics.entries == 1)
        // The node asks for a repair every second until the driver says the log is usable again.
        var repairs = 0
        for _ in 0..<3 {
            node.now = node.now.advanced(by: .seconds(1))
            repairs += node.node.handle(.timer, now: node.now).filter { $0 == .repairLog }.count
        }
        #expect(repairs == 3)
        node.carryOut(node.node.handle(.logRepaired(keptSequence: 1), now: node.now))
        #expect(node.put("b", "2")?.isStored == true)
        #expect(node.appended.last?.sequence == 2)
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
        #expect(log.logBytes == WALFormat.encode(WALRecord(sequence: 0, operation: record)).count)
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
            me: NodeID("solo"), now: node.now)
        #expect(outcome.store.stored(KeyReference(Array("k".utf8)))?.value == Array("value 99".utf8))
        // One at a time: no second snapshot until the first is reported.
        node.advance(by: .milliseconds(100))
        #expect(node.snapshots.count == 1)
        node.carryOut(node.node.handle(.snapshotWritten(upTo: 100), now: node.now))
        #expect(node.node.log?.phase == .idle)
    }
}

@Suite("WAL record sizes")
struct WALRecordSizeTests {
    @Test(arguments: 0..<5)
    func theComputedSizeIsTheEncodedSize(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for sequence in 1...200 {
            let record = WALRecord(sequence: UInt64(sequence), operation: randomOperation(&random))
            #expect(WALFormat.encodedSize(of: record.operation) == WALFormat.encode(record).count)
        }
    }
}
