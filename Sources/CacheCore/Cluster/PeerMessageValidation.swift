/// What a peer may say: every field of a decoded message checked against what this node can accept.
///
/// A peer is input, whether it is a forger or a member with a bug, so a well-formed frame whose
/// numbers are out of range is as malformed as a truncated one: the decoder refuses it (the driver
/// closes the connection and counts it) and the node never sees it. The encoder asserts the same
/// rules, so that a node never sends what its peers would refuse. What depends on the receiver's
/// state (its clock, its own name) is checked by `ClusterNode` itself.
extension PeerProtocol {
    /// Why `message` is not acceptable from a peer, or `nil` when every field is in range.
    public static func problem(with message: PeerMessage) -> String? {
        switch message {
        case .membership(let membership): problem(with: membership)
        case .replication(let replication): problem(with: replication)
        }
    }

    static func problem(with message: MembershipMessage) -> String? {
        if let problem = senderProblem(name: message.sender.rawValue, address: message.senderAddress) {
            return problem
        }
        if !message.senderClientAddress.isEmpty, !isValidAddress(message.senderClientAddress) {
            return "sender client address is not host:port"
        }
        if message.senderIncarnation > Membership.maximumIncarnation { return "sender incarnation out of range" }
        if message.senderTime.nanosecondsSinceEpoch < 0 { return "sender time before the epoch" }
        if let problem = problem(with: message.updates) { return problem }
        switch message.body {
        case .ping, .join:
            return nil
        case .pingRequest(_, let target, let targetAddress):
            guard NodeID.isValid(target.rawValue), isValidAddress(targetAddress) else {
                return "probe target is not a valid member"
            }
            return nil
        case .ack(_, let target):
            return NodeID.isValid(target.rawValue) ? nil : "ack names an invalid member"
        case .state(_, let all), .sync(_, let all):
            return problem(with: all)
        }
    }

    static func problem(with updates: [MemberUpdate]) -> String? {
        // A whole membership, this node's included, is the most one message lists.
        if updates.count > Membership.maximumMembers + 1 { return "more member updates than a cluster holds" }
        for update in updates {
            if !NodeID.isValid(update.id.rawValue) { return "member update names an invalid member" }
            if !isValidAddress(update.address) { return "member update's address is not host:port" }
            if !update.clientAddress.isEmpty, !isValidAddress(update.clientAddress) {
                return "member update's client address is not host:port"
            }
            if update.incarnation > Membership.maximumIncarnation { return "member update's incarnation out of range" }
        }
        return nil
    }

    static func problem(with message: ReplicationMessage) -> String? {
        if let problem = senderProblem(name: message.sender.rawValue, address: message.senderAddress) {
            return problem
        }
        switch message.body {
        case .write(_, _, let entry, _):
            return problem(with: entry)
        case .writeReply(_, .stale(let current)):
            return problem(with: current)
        case .writeReply, .read, .readReply(_, nil):
            return nil
        case .readReply(_, let entry?):
            return problem(with: entry)
        case .digest(let buckets):
            if buckets.count > PeerDigests.bucketCount { return "more digest buckets than there are" }
            return buckets.allSatisfy({ Int($0.index) < PeerDigests.bucketCount }) ? nil : "digest bucket out of range"
        case .summary(let buckets, let versions):
            if buckets.count > PeerDigests.bucketCount { return "more summary buckets than there are" }
            if !buckets.allSatisfy({ Int($0) < PeerDigests.bucketCount }) { return "summary bucket out of range" }
            return versions.lazy.compactMap { problem(with: $0.version) }.first
        case .pull(let keys):
            return keys.count > maximumBatchItems ? "pull of more keys than a batch holds" : nil
        case .push(let items):
            if items.count > maximumBatchItems { return "push of more entries than a batch holds" }
            return items.lazy.compactMap { problem(with: $0.entry) }.first
        case .forget(_, let version):
            return problem(with: version)
        }
    }

    static func problem(with entry: VersionedEntry) -> String? {
        if let problem = problem(with: entry.version) { return problem }
        if let expiresAt = entry.expiresAt {
            // A value expires at most the longest TTL after the clock reading that versioned it.
            let latest = Instant(nanosecondsSinceEpoch: entry.version.wall).advanced(
                byNanoseconds: maximumExpiryNanoseconds)
            if expiresAt.nanosecondsSinceEpoch < 0 || expiresAt > latest { return "expiry out of range" }
        }
        return nil
    }

    static func problem(with version: Version) -> String? {
        if version.wall < 0 { return "version before the epoch" }
        return NodeID.isValid(version.node.rawValue) ? nil : "version names an invalid node"
    }

    static func senderProblem(name: String, address: String) -> String? {
        if !NodeID.isValid(name) { return "sender is not a valid node name" }
        if !isValidAddress(address) { return "sender address is not host:port" }
        return nil
    }

    /// `host:port` with a port in 1...65535 and a host of letters, digits and `.-_:[]` (IPv6 in
    /// brackets), at most 255 bytes: where a peer may ask to be answered.
    public static func isValidAddress(_ address: String) -> Bool {
        let utf8 = Array(address.utf8)
        guard let colon = utf8.lastIndex(of: UInt8(ascii: ":")), colon > 0, colon <= 255 else { return false }
        let portDigits = utf8[(colon + 1)...]
        guard (1...5).contains(portDigits.count), portDigits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return false
        }
        let port = portDigits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (1...65535).contains(port) else { return false }
        return utf8[..<colon].allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x3A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D || byte == 0x5B || byte == 0x5D
        }
    }
}
