/// A node's store and, when persistence is on, its write-ahead log, changed together.
///
/// A write is checked, then logged, then applied, in one step: the log's order is the store's
/// order, and a write the log refuses (failed disk) leaves the store untouched. What must be
/// persisted leaves as a value (`WriteAheadLog.Append`); this type knows nothing of files.
public struct NodeStorage: Sendable {
    /// The entries.
    public var store: CacheStore
    /// The log, or `nil` when the node keeps nothing on disk.
    public var log: WriteAheadLog?

    /// Creates storage from a store and an optional log.
    public init(store: CacheStore, log: WriteAheadLog?) {
        self.store = store
        self.log = log
    }

    /// The outcome of a write.
    public enum WriteOutcome: Equatable, Sendable {
        /// Applied; when persistence is on, `append` holds the record to write and its sequence.
        case applied(append: (sequence: UInt64, bytes: [UInt8])?)
        /// Refused by the store's limits; nothing changed.
        case rejected(RequestError)
        /// Refused because the disk failed; nothing changed.
        case unavailable(reason: String)

        public static func == (lhs: WriteOutcome, rhs: WriteOutcome) -> Bool {
            switch (lhs, rhs) {
            case (.applied(let left), .applied(let right)):
                left?.sequence == right?.sequence && left?.bytes == right?.bytes
            case (.rejected(let left), .rejected(let right)): left == right
            case (.unavailable(let left), .unavailable(let right)): left == right
            default: false
            }
        }
    }

    /// Stores `value` under `key`.
    public mutating func put(_ key: CacheKey, value: [UInt8], expiresAt: Instant?, now: Instant) -> WriteOutcome {
        if let rejection = store.validate(key: key, valueCount: value.count) {
            return .rejected(rejection.requestError)
        }
        let append: (sequence: UInt64, bytes: [UInt8])?
        switch log?.append(.put(key: key.bytes, value: value, expiresAt: expiresAt)) {
        case .refused(let reason): return .unavailable(reason: reason)
        case .append(let sequence, let bytes): append = (sequence, bytes)
        case nil: append = nil
        }
        switch store.put(key, value: value, expiresAt: expiresAt, now: now) {
        case .stored: return .applied(append: append)
        case .rejected(let rejection):
            // `validate` accepted the same key and value a moment ago under the same lock.
            preconditionFailure("store refused a validated put: \(rejection)")
        }
    }

    /// Deletes `key`. The delete is logged even when the key is absent here (evicted, say), so that
    /// an older put of it in the log can never bring it back on restart.
    public mutating func delete(_ key: CacheKey, now: Instant) -> (Store<SampledLRU>.DeleteResult, WriteOutcome) {
        let append: (sequence: UInt64, bytes: [UInt8])?
        switch log?.append(.delete(key: key.bytes)) {
        case .refused(let reason): return (.notFound, .unavailable(reason: reason))
        case .append(let sequence, let bytes): append = (sequence, bytes)
        case nil: append = nil
        }
        return (store.delete(key, now: now), .applied(append: append))
    }
}
