import Testing

@testable import CacheCore

@Suite("Replica store")
struct ReplicaStoreTests {
    @Test func aNodeWithPeersKeepsExpiredValuesAsTombstones() {
        var store = ReplicaStore(seed: 1)
        let key = KeyReference(bytes("a"))
        store.apply(
            key, VersionedEntry(version: version(1), value: bytes("v"), expiresAt: t0.advanced(bySeconds: 1)), now: t0)
        #expect(store.sweepExpired(now: t0.advanced(bySeconds: 2)) == 1)
        let entry = store.stored(key)
        #expect(entry?.hasValue == false)
        #expect(entry?.version == version(1))
        #expect(entry?.expiresAt == t0.advanced(bySeconds: 1))
        #expect(store.statistics.tombstones == 1 && store.statistics.liveEntries == 0)
        // An older write cannot come back over it.
        #expect(
            store.apply(key, VersionedEntry(version: version(0), value: bytes("old"), expiresAt: nil), now: t0)
                == .stale(current: version(1)))
    }

    @Test func evictionNeverRemovesATombstone() {
        var store = ReplicaStore(limits: StoreLimits(maximumEntries: 2), seed: 1)
        store.apply(
            KeyReference(bytes("dead")), VersionedEntry(version: version(1), value: nil, expiresAt: nil), now: t0)
        for i in 0..<20 {
            store.apply(
                KeyReference(bytes("k\(i)")), VersionedEntry(version: version(2), value: bytes("v"), expiresAt: nil),
                now: t0)
        }
        #expect(store.statistics.liveEntries == 2)
        #expect(store.stored(KeyReference(bytes("dead"))) != nil)
        #expect(store.statistics.evictions == 18)
    }

    @Test func anUnsolicitedRepairIsTakenOnlyIfThereIsRoom() {
        var store = ReplicaStore(limits: StoreLimits(maximumEntries: 2), seed: 1)
        for name in ["a", "b"] {
            store.apply(
                KeyReference(bytes(name)), VersionedEntry(version: version(1), value: bytes("v"), expiresAt: nil),
                now: t0)
        }
        let repair = VersionedEntry(version: version(1), value: bytes("v"), expiresAt: nil)
        #expect(store.apply(KeyReference(bytes("c")), repair, now: t0, admission: .onlyIfRoom) == .notAdmitted)
        #expect(store.statistics.evictions == 0)
        // A newer version of a key it holds is taken: it replaces, it does not add.
        let newer = VersionedEntry(version: version(2), value: bytes("w"), expiresAt: nil)
        #expect(
            store.apply(KeyReference(bytes("a")), newer, now: t0, admission: .onlyIfRoom)
                == .applied(previousWasLive: true))
    }

    @Test func aStoreWithoutTombstonesDropsThemAll() {
        var store = ReplicaStore(seed: 1)
        for i in 0..<50 {
            store.apply(
                KeyReference(bytes("k\(i)")),
                VersionedEntry(version: version(1), value: i % 2 == 0 ? nil : bytes("v"), expiresAt: nil), now: t0)
        }
        #expect(store.statistics.tombstones == 25)
        store.setKeepsTombstones(false)
        #expect(store.statistics.tombstones == 0)
        #expect(store.statistics.liveEntries == 25)
        #expect(store.count == 25)
    }
}
