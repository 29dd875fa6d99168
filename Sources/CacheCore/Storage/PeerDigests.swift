/// For each peer, a digest of the keys this node and that peer both replicate, in 1,024 buckets by
/// ring position: each bucket the XOR of a hash of every such key with its version, so the same set
/// of versions gives the same digest whatever the order they arrived in.
///
/// Kept up to date on every change of the store (each change toggles its key's hash in the digest of
/// each other replica of the key), so an anti-entropy round costs nothing until buckets differ.
/// After the ring changes, every key's replicas may have changed: the digests are rebuilt by a walk
/// over the store in position order, a slice at a time; keys past the walk are counted when it
/// reaches them, and no digest is offered until it is done.
struct PeerDigests: Sendable {
    /// Buckets per peer: the top 10 bits of a key's ring position.
    static let bucketCount = 1024

    private(set) var byPeer: [NodeID: [UInt64]] = [:]
    /// Keys whose position's top 32 bits are below this are counted (2^32: every key).
    private(set) var coveredUpTo: UInt64 = 1 << 32

    var isComplete: Bool { coveredUpTo == 1 << 32 }

    /// Forgets everything: the walk starts again from position 0.
    mutating func restart() {
        byPeer = [:]
        coveredUpTo = 0
    }

    /// Whether a key at this hash is already counted.
    func covers(_ hash: UInt32) -> Bool { UInt64(hash) < coveredUpTo }

    /// The walk has counted every key below `hash`.
    mutating func advance(to hash: UInt64) {
        precondition(hash >= coveredUpTo && hash <= 1 << 32, "PeerDigests: the walk went backwards")
        coveredUpTo = hash
    }

    /// Adds or removes (XOR) one key's digest in `bucket` of each of `peers`.
    mutating func toggle(_ digest: UInt64, bucket: Int, peers: some Sequence<NodeID>) {
        for peer in peers {
            byPeer[peer, default: [UInt64](repeating: 0, count: Self.bucketCount)][bucket] ^= digest
        }
    }

    /// The digests of the keys shared with `peer`, once complete; only non-zero buckets.
    func digests(sharedWith peer: NodeID) -> [DigestBucket]? {
        guard isComplete else { return nil }
        guard let buckets = byPeer[peer] else { return [] }
        var result: [DigestBucket] = []
        for (index, digest) in buckets.enumerated() where digest != 0 {
            result.append(DigestBucket(index: UInt16(index), digest: digest))
        }
        return result
    }

    /// The digest of one bucket shared with `peer`.
    func digest(sharedWith peer: NodeID, bucket: Int) -> UInt64 {
        byPeer[peer]?[bucket] ?? 0
    }
}
