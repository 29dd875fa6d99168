/// A key and what a replica holds for it.
public struct ReplicaItem: Equatable, Sendable {
    public var key: [UInt8]
    public var entry: VersionedEntry

    public init(key: [UInt8], entry: VersionedEntry) {
        self.key = key
        self.entry = entry
    }
}

/// A key and the version a replica holds for it (anti-entropy summaries).
public struct KeyVersion: Equatable, Sendable {
    public var key: [UInt8]
    public var version: Version

    public init(key: [UInt8], version: Version) {
        self.key = key
        self.version = version
    }
}

/// A replica's answer to a write.
public enum ReplicaWriteResult: Equatable, Sendable {
    /// The replica holds the write (or a newer one) durably; `previousWasLive` says whether the key
    /// held a value before (for a delete's 200 or 404).
    case stored(previousWasLive: Bool)
    /// The replica holds a newer version than the write's: the coordinator must write again with a
    /// version above `current`.
    case stale(current: Version)
    /// The replica cannot take writes (its disk failed).
    case refused(reason: String)
}

/// What one replication message asks or answers.
public enum ReplicationBody: Equatable, Sendable {
    /// Store `entry` for `key` if newer, and answer `request` once it is durable (`nil`: no answer is
    /// wanted, as for a background read repair). `repair` marks a read repair, handoff or collection
    /// rather than a client's write. On the wire, no request is request number 0.
    case write(request: UInt64?, key: [UInt8], entry: VersionedEntry, repair: Bool)
    /// The answer to a write.
    case writeReply(request: UInt64, result: ReplicaWriteResult)
    /// Send what you hold for `key`.
    case read(request: UInt64, key: [UInt8])
    /// The answer to a read: the durable entry, if any.
    case readReply(request: UInt64, entry: VersionedEntry?)
    /// Anti-entropy, step 1: a digest of every bucket of the keys sender and receiver both replicate.
    case digest(buckets: [DigestBucket])
    /// Anti-entropy, step 2: the receiver's key versions in the buckets that differ.
    case summary(buckets: [UInt16], versions: [KeyVersion])
    /// Anti-entropy, step 3: send these entries.
    case pull(keys: [[UInt8]])
    /// Entries to store if newer (anti-entropy); no answer.
    case push(items: [ReplicaItem])
    /// Every replica holds this tombstone (or expired entry): drop it if it is still what `key`
    /// holds. No answer.
    case forget(key: [UInt8], version: Version)
}

/// One anti-entropy bucket: keys whose ring position starts with the bucket's 10 bits.
public struct DigestBucket: Equatable, Sendable {
    /// Buckets a node keeps for each peer it shares keys with (8 bytes each).
    public static let bucketsPerPeer = PeerDigests.bucketCount

    public var index: UInt16
    /// XOR of a hash of each key and its version: the same set of versions gives the same digest in
    /// any order.
    public var digest: UInt64

    public init(index: UInt16, digest: UInt64) {
        self.index = index
        self.digest = digest
    }
}

/// A replication message and who sent it (the address answers go to).
public struct ReplicationMessage: Equatable, Sendable {
    public var sender: NodeID
    public var senderAddress: String
    public var body: ReplicationBody

    public init(sender: NodeID, senderAddress: String, body: ReplicationBody) {
        self.sender = sender
        self.senderAddress = senderAddress
        self.body = body
    }
}

// MARK: Wire format

extension PeerProtocol {
    enum ReplicationTag: UInt8 {
        case write = 1, writeReply, read, readReply, digest, summary, pull, push, forget
    }

    enum WriteResultTag: UInt8 {
        case stored = 1, stale, refused
    }

    /// The longest key accepted in a replication frame: the node's own limit.
    static let maximumKeyLength = StoreLimits.defaultMaxKeyBytes
    /// The longest value accepted in a replication frame: the node's own limit.
    static let maximumValueLength = StoreLimits.defaultMaxValueBytes
}

extension PeerProtocol.Writer {
    /// A key: `length u32 | bytes`.
    mutating func key(_ key: [UInt8]) {
        precondition(key.count <= PeerProtocol.maximumKeyLength, "peer protocol key too long")
        integer(UInt32(key.count))
        bytes.append(contentsOf: key)
    }

    /// A value: `length u32 | bytes`.
    mutating func value(_ value: [UInt8]) {
        precondition(value.count <= PeerProtocol.maximumValueLength, "peer protocol value too long")
        integer(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func version(_ version: Version) {
        integer(version.wall)
        integer(version.logical)
        string(version.node.rawValue)
    }

    mutating func versionedEntry(_ entry: VersionedEntry) {
        version(entry.version)
        bytes.append((entry.value == nil ? 0 : 1) | (entry.expiresAt == nil ? 0 : 2))
        if let expiresAt = entry.expiresAt { integer(expiresAt.nanosecondsSinceEpoch) }
        if let value = entry.value { self.value(value) }
    }

    mutating func replication(_ message: ReplicationMessage) {
        typealias Tag = PeerProtocol.ReplicationTag
        string(message.sender.rawValue)
        string(message.senderAddress)
        switch message.body {
        case .write(let request, let key, let entry, let repair):
            bytes.append(Tag.write.rawValue)
            precondition(request != 0, "request number 0 stands for no request on the wire")
            integer(request ?? 0)
            self.key(key)
            versionedEntry(entry)
            bytes.append(repair ? 1 : 0)
        case .writeReply(let request, let result):
            bytes.append(Tag.writeReply.rawValue)
            integer(request)
            switch result {
            case .stored(let previousWasLive):
                bytes.append(PeerProtocol.WriteResultTag.stored.rawValue)
                bytes.append(previousWasLive ? 1 : 0)
            case .stale(let current):
                bytes.append(PeerProtocol.WriteResultTag.stale.rawValue)
                version(current)
            case .refused(let reason):
                bytes.append(PeerProtocol.WriteResultTag.refused.rawValue)
                string(String(reason.utf8.prefix(PeerProtocol.maximumStringLength)) ?? "disk failed")
            }
        case .read(let request, let key):
            bytes.append(Tag.read.rawValue)
            integer(request)
            self.key(key)
        case .readReply(let request, let found):
            bytes.append(Tag.readReply.rawValue)
            integer(request)
            if let found {
                bytes.append(1)
                versionedEntry(found)
            } else {
                bytes.append(0)
            }
        case .digest(let buckets):
            bytes.append(Tag.digest.rawValue)
            integer(UInt32(buckets.count))
            for bucket in buckets {
                integer(bucket.index)
                integer(bucket.digest)
            }
        case .summary(let buckets, let versions):
            bytes.append(Tag.summary.rawValue)
            integer(UInt32(buckets.count))
            for bucket in buckets { integer(bucket) }
            integer(UInt32(versions.count))
            for item in versions {
                self.key(item.key)
                version(item.version)
            }
        case .pull(let keys):
            bytes.append(Tag.pull.rawValue)
            integer(UInt32(keys.count))
            for key in keys { self.key(key) }
        case .push(let items):
            bytes.append(Tag.push.rawValue)
            integer(UInt32(items.count))
            for item in items {
                self.key(item.key)
                versionedEntry(item.entry)
            }
        case .forget(let key, let forgotten):
            bytes.append(Tag.forget.rawValue)
            self.key(key)
            version(forgotten)
        }
    }
}

extension PeerProtocol.Reader {
    /// `length u32 | bytes`, at most `maximum` bytes. Keys and values are bytes, as Redis's are: HTTP
    /// clients write UTF-8 text, Redis-protocol clients any bytes.
    mutating func lengthPrefixed(maximum: Int) -> [UInt8]? {
        guard let length = integer(UInt32.self).map(Int.init), length <= maximum, bytes.count - offset >= length
        else { return nil }
        let taken = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
        offset += length
        return taken
    }

    /// A key: not empty, at most the node's key limit.
    mutating func key() -> [UInt8]? {
        guard let key = lengthPrefixed(maximum: PeerProtocol.maximumKeyLength), !key.isEmpty else { return nil }
        return key
    }

    mutating func version() -> Version? {
        guard let wall = integer(Int64.self), let logical = integer(UInt32.self), let node = string(), !node.isEmpty
        else { return nil }
        return Version(wall: wall, logical: logical, node: NodeID(node))
    }

    mutating func entry() -> VersionedEntry? {
        guard let version = version(), let flags = byte(), flags & ~3 == 0 else { return nil }
        var expiresAt: Instant?
        if flags & 2 != 0 {
            guard let raw = integer(Int64.self) else { return nil }
            expiresAt = Instant(nanosecondsSinceEpoch: raw)
        }
        var value: [UInt8]?
        if flags & 1 != 0 {
            guard let bytes = lengthPrefixed(maximum: PeerProtocol.maximumValueLength) else { return nil }
            value = bytes
        }
        return VersionedEntry(version: version, value: value, expiresAt: expiresAt)
    }

    /// A `u32` count that cannot exceed what the remaining bytes could hold at `minimumSize` each.
    mutating func count(minimumSize: Int) -> Int? {
        guard let count = integer(UInt32.self).map(Int.init), count <= (bytes.count - offset) / minimumSize else {
            return nil
        }
        return count
    }

    mutating func replication() -> ReplicationMessage? {
        guard let sender = string(), !sender.isEmpty, let senderAddress = string(),
            let tag = byte().flatMap(PeerProtocol.ReplicationTag.init(rawValue:))
        else { return nil }
        let body: ReplicationBody
        switch tag {
        case .write:
            guard let request = integer(UInt64.self), let key = key(), let entry = entry(), let repair = byte(),
                repair <= 1
            else { return nil }
            body = .write(request: request == 0 ? nil : request, key: key, entry: entry, repair: repair == 1)
        case .writeReply:
            guard let request = integer(UInt64.self),
                let resultTag = byte().flatMap(PeerProtocol.WriteResultTag.init(rawValue:))
            else { return nil }
            switch resultTag {
            case .stored:
                guard let flag = byte(), flag <= 1 else { return nil }
                body = .writeReply(request: request, result: .stored(previousWasLive: flag == 1))
            case .stale:
                guard let current = version() else { return nil }
                body = .writeReply(request: request, result: .stale(current: current))
            case .refused:
                guard let reason = string() else { return nil }
                body = .writeReply(request: request, result: .refused(reason: reason))
            }
        case .read:
            guard let request = integer(UInt64.self), let key = key() else { return nil }
            body = .read(request: request, key: key)
        case .readReply:
            guard let request = integer(UInt64.self), let flag = byte(), flag <= 1 else { return nil }
            if flag == 1 {
                guard let found = entry() else { return nil }
                body = .readReply(request: request, entry: found)
            } else {
                body = .readReply(request: request, entry: nil)
            }
        case .digest:
            guard let count = count(minimumSize: 10) else { return nil }
            var buckets: [DigestBucket] = []
            buckets.reserveCapacity(count)
            for _ in 0..<count {
                guard let index = integer(UInt16.self), let digest = integer(UInt64.self) else { return nil }
                buckets.append(DigestBucket(index: index, digest: digest))
            }
            body = .digest(buckets: buckets)
        case .summary:
            guard let bucketCount = count(minimumSize: 2) else { return nil }
            var buckets: [UInt16] = []
            buckets.reserveCapacity(bucketCount)
            for _ in 0..<bucketCount {
                guard let bucket = integer(UInt16.self) else { return nil }
                buckets.append(bucket)
            }
            guard let versionCount = count(minimumSize: 19) else { return nil }
            var versions: [KeyVersion] = []
            versions.reserveCapacity(versionCount)
            for _ in 0..<versionCount {
                guard let key = key(), let version = version() else { return nil }
                versions.append(KeyVersion(key: key, version: version))
            }
            body = .summary(buckets: buckets, versions: versions)
        case .pull:
            guard let count = count(minimumSize: 4) else { return nil }
            var keys: [[UInt8]] = []
            keys.reserveCapacity(count)
            for _ in 0..<count {
                guard let key = key() else { return nil }
                keys.append(key)
            }
            body = .pull(keys: keys)
        case .push:
            guard let count = count(minimumSize: 20) else { return nil }
            var items: [ReplicaItem] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                guard let key = key(), let entry = entry() else { return nil }
                items.append(ReplicaItem(key: key, entry: entry))
            }
            body = .push(items: items)
        case .forget:
            guard let key = key(), let forgotten = version() else { return nil }
            body = .forget(key: key, version: forgotten)
        }
        return ReplicationMessage(sender: NodeID(sender), senderAddress: senderAddress, body: body)
    }
}
