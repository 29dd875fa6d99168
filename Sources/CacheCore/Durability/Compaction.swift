/// Which files a durable snapshot makes obsolete: decided here, once, for the server's log
/// directory and the simulator's disk alike.
public enum Compaction {
    /// The files a snapshot covering every record up to `upTo` replaces: each log segment that
    /// starts at or before `upTo` (the log was rotated at `upTo`, so each of them also ends there
    /// or before), and each older snapshot. Segments and snapshots are named by their first and
    /// last sequence numbers. Sorted, oldest first.
    public static func obsolete(
        segments: some Sequence<UInt64>, snapshots: some Sequence<UInt64>, coveredBy upTo: UInt64
    ) -> (segments: [UInt64], snapshots: [UInt64]) {
        (segments.filter { $0 <= upTo }.sorted(), snapshots.filter { $0 < upTo }.sorted())
    }
}
