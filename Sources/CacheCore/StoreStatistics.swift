/// A node's counters as `/stats` and `/metrics` show them; cheap to copy.
///
/// Entries, tombstones, bytes, evictions and expirations are the replica store's; gets, puts,
/// deletes, hits and misses count the client requests this node coordinated.
public struct StoreStatistics: Sendable, Equatable {
    /// The replica store's own counts, as it keeps them (the node takes them whole).
    public var store = ReplicaStore.Statistics()
    /// Values held, including expired ones not yet reclaimed.
    public var entries: Int { store.liveEntries }
    /// Tombstones held (deletes and expired values awaiting collection; none on a node alone).
    public var tombstones: Int { store.tombstones }
    /// The store's own estimate of the bytes its entries use (keys, values and bookkeeping).
    public var estimatedBytes: Int { store.estimatedBytes }
    /// Client reads coordinated.
    public var gets: UInt64 = 0
    /// Client writes of a value coordinated (accepted for coordination: valid and within limits).
    public var puts: UInt64 = 0
    /// Client deletes coordinated.
    public var deletes: UInt64 = 0
    /// Client reads that found a live value.
    public var hits: UInt64 = 0
    /// Client reads that found nothing, a tombstone or an expired value.
    public var misses: UInt64 = 0
    /// Values removed to stay within the entry or memory limit.
    public var evictions: UInt64 { store.evictions }
    /// Values removed because their time to live had passed.
    public var expirations: UInt64 { store.expirations }
    /// Client requests answered that their consistency level was not met.
    public var unavailable: UInt64 = 0
    /// Stale replicas sent the newest entry by a read this node coordinated.
    public var readRepairs: UInt64 = 0
    /// Digest exchanges this node started with another replica.
    public var antiEntropyRounds: UInt64 = 0
    /// Entries this node pushed to a replica that lacked them, after comparing digests.
    public var antiEntropyKeysPushed: UInt64 = 0
    /// Held writes (hinted handoffs) that a returning replica acknowledged.
    public var handoffsDelivered: UInt64 = 0
    /// Versions from peers refused for being ahead of this node's clock by more than the maximum offset.
    public var versionsRefused: UInt64 = 0
    /// Peer messages ignored for naming this node as their sender.
    public var peerMessagesIgnored: UInt64 = 0
    /// Client writes refused while this node's clock ran ahead of its peers'.
    public var writesRefusedForClock: UInt64 = 0
    /// Client writes held after the node started until its clock could not repeat a version it
    /// made before (at most `MAX_CLOCK_OFFSET_MS`).
    public var writesDelayedForClock: UInt64 = 0
    /// Client writes not made because the deadline their client gave (`X-Cache-Deadline`) passed
    /// before this node could take them.
    public var writesPastDeadline: UInt64 = 0
    /// Entries written to the log again after a repair of the failed log cut off their records.
    public var entriesRewrittenAfterRepair: UInt64 = 0
    /// Answers not held back for the log because its queue was full: writes refused, reads
    /// withheld (the coordinator asks again).
    public var answersShed: UInt64 = 0
    /// Replica reads not answered while the log had failed, the key's entry not durable (an
    /// answer would show what a crash can take back).
    public var readsWithheld: UInt64 = 0

    /// Empty counters.
    public init() {}
}
