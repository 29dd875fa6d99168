import Testing

@testable import CacheCore

@Suite("Recovery")
struct RecoveryTests {
    private func recover(
        snapshots: [Recovery.SnapshotFile] = [], segments: [Recovery.SegmentFile], at time: Instant = now
    ) -> Recovery.Outcome {
        Recovery.recover(
            snapshots: snapshots, segments: segments, limits: StoreLimits(), seed: 1, me: NodeID("me"), now: time,
            maximumClockOffset: ClusterNode.Configuration.defaultMaximumClockOffset)
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

    /// A node admits versions up to its own maximum clock offset ahead while it runs; recovery must
    /// admit the same ones, or it drops writes the node acknowledged (the simulator's seed 1033: a
    /// node configured for 10 s recovered with the 0.5 s default and lost an acknowledged write).
    @Test func recoveryAdmitsWhatTheNodesOwnClockBoundAdmitted() {
        let ahead = now.advanced(by: .seconds(2)).nanosecondsSinceEpoch
        let bytes = segment([versioned(1, "k", "v", wall: ahead)])
        func recovered(bound: Duration) -> Recovery.Outcome {
            Recovery.recover(
                snapshots: [], segments: [.init(firstSequence: 1, bytes: bytes)], limits: StoreLimits(), seed: 1,
                me: NodeID("me"), now: now, maximumClockOffset: bound)
        }
        #expect(value(recovered(bound: .seconds(5)).store, "k") == "v")
        #expect(value(recovered(bound: .milliseconds(500)).store, "k") == nil)
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

    /// The last member record of each member wins, the snapshot's first and the log's after it;
    /// member records are not store entries.
    @Test func theLastMemberRecordOfEachMemberIsWhatRecoveryReturns() {
        func member(_ id: String, _ incarnation: UInt64, _ status: MemberStatus) -> MemberUpdate {
            MemberUpdate(id: NodeID(id), address: "\(id):7000", incarnation: incarnation, status: status)
        }
        let snapshot = SnapshotFormat.encode(
            sequence: 2, members: [member("b", 1, .alive), member("c", 2, .dead)],
            entries: [
                (
                    Array("k".utf8),
                    VersionedEntry(
                        version: Version(wall: 10, logical: 0, node: NodeID("n")), value: [118], expiresAt: nil)
                )
            ])
        let records = [
            WALRecord(sequence: 3, operation: .member(member("b", 3, .dead))),
            WALRecord(sequence: 4, operation: .member(member("d", 0, .alive))),
            WALRecord(sequence: 5, operation: .member(member("b", 4, .left))),
        ]
        let outcome = recover(
            snapshots: [.init(sequence: 2, bytes: snapshot)],
            segments: [.init(firstSequence: 3, bytes: segment(records, firstSequence: 3))])
        #expect(outcome.members == [member("b", 4, .left), member("c", 2, .dead), member("d", 0, .alive)])
        #expect(outcome.report.members == 3)
        #expect(outcome.report.snapshotEntries == 1)
        #expect(value(outcome.store, "k") == "v")
        #expect(outcome.report.lastSequence == 5)
    }

    /// A segment whose header names another sequence than its file is set aside whole: none of its
    /// records reach the store (they did before, while the report said it was set aside).
    @Test func aSegmentWhoseHeaderNamesAnotherSequenceAddsNothing() {
        let first = segment([versioned(1, "a", "1", wall: 10)])
        let misnamed = segment([versioned(2, "b", "2", wall: 20)], firstSequence: 1)
        let outcome = recover(segments: [
            .init(firstSequence: 1, bytes: first), .init(firstSequence: 2, bytes: misnamed),
        ])
        #expect(value(outcome.store, "a") == "1")
        #expect(outcome.store.stored(KeyReference(Array("b".utf8))) == nil)
        #expect(outcome.report.lastSequence == 1)
        #expect(outcome.repairs.contains(.quarantineSegment(firstSequence: 2)))
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
        LogSnapshot(upTo: 250, store: atCompaction.store, members: [], now: now).encode { snapshotBytes += $0 }
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
