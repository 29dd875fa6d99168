/// A node's name in the cluster (`NODE_ID`).
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name as configured.
    public let rawValue: String

    /// Wraps a node name.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// The longest name a node may have.
    public static let maximumLength = 128

    /// Whether `name` is a valid node name: 1 to 128 ASCII letters, digits, '.', '_', ':' or '-'.
    /// `NODE_ID` is checked against it, and so is every name a peer sends.
    public static func isValid(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= maximumLength else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x3A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
    }

    /// Names are equal when their bytes are: `String` equality would make two differently encoded
    /// names (precomposed and decomposed accents) one member.
    public static func == (lhs: NodeID, rhs: NodeID) -> Bool {
        // Names are short and contiguous: compare their UTF-8 storage directly when both have one.
        let fast = lhs.rawValue.utf8.withContiguousStorageIfAvailable { left in
            rhs.rawValue.utf8.withContiguousStorageIfAvailable { right in
                left.elementsEqual(right)
            }
        }
        if let fast, let equal = fast { return equal }
        return lhs.rawValue.utf8.elementsEqual(rhs.rawValue.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        if let hashed: Void = rawValue.utf8.withContiguousStorageIfAvailable({
            hasher.combine(bytes: UnsafeRawBufferPointer($0))
        }) {
            return hashed
        }
        Array(rawValue.utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool {
        // Compare bytes, not Unicode-canonical `String` order, so every process sorts alike.
        lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8)
    }

    public var description: String { rawValue }
}

/// Consistent hashing with virtual nodes: where each key lives.
///
/// Each member owns `virtualNodes` points on a 64-bit circle, at the xxHash64 of its name and the
/// point's number; a key belongs to the first point at or after its own hash, and its preference
/// list is the first `count` distinct members met going round from there. The ring depends only on
/// the set of members: two nodes that see the same membership compute the same ring, whatever order
/// they learned it in. Adding or removing one of N members moves about 1/N of the keys.
public struct HashRing: Sendable, Equatable {
    /// Points per member. The spread of load between members shrinks as 1/√points; 1,024 keeps the
    /// busiest of 100 members within about 10% of the mean (measured in the tests).
    public static let defaultVirtualNodes = 1024

    /// Points per member.
    public let virtualNodes: Int
    /// The members, sorted by name.
    public let members: [NodeID]
    /// Point positions, ascending (ties broken by member), and which member owns each.
    let positions: [UInt64]
    private let owners: [Int32]
    /// Every point's position, ascending: a point owns the arc from the one before it (exclusive) to
    /// itself (inclusive).
    public var pointPositions: [UInt64] { positions }

    /// The ring of `members` (duplicates ignored) with `virtualNodes` points each.
    public init(members: some Sequence<NodeID>, virtualNodes: Int = HashRing.defaultVirtualNodes) {
        precondition(virtualNodes > 0, "HashRing needs at least one point per member")
        let sorted = Array(Set(members)).sorted()
        var points: [(position: UInt64, owner: Int32)] = []
        points.reserveCapacity(sorted.count * virtualNodes)
        for (index, member) in sorted.enumerated() {
            Self.appendPoints(of: member, owner: Int32(index), virtualNodes: virtualNodes, to: &points)
        }
        points.sort(by: Self.precedes)
        self.init(sorted: sorted, virtualNodes: virtualNodes, points: points)
    }

    private init(sorted: [NodeID], virtualNodes: Int, points: [(position: UInt64, owner: Int32)]) {
        assert(points.count == sorted.count * virtualNodes, "HashRing: a member without all its points")
        self.virtualNodes = virtualNodes
        self.members = sorted
        positions = points.map(\.position)
        owners = points.map(\.owner)
        var bytes: [UInt8] = []
        for member in sorted {
            bytes.append(contentsOf: member.rawValue.utf8)
            bytes.append(0)
        }
        version = StableHash.xxh64(bytes)
    }

    /// The ring of `newMembers`, made from this one: the points of members in both are kept (in
    /// order), only those of members joining are computed, and the two sorted lists are merged. The
    /// same ring as `HashRing(members:virtualNodes:)` gives, at the cost of a walk instead of a sort
    /// of every point (a rebuild per membership change was a fifth of the simulator's time).
    public func with(members newMembers: some Sequence<NodeID>) -> HashRing {
        let sorted = Array(Set(newMembers)).sorted()
        guard sorted != members else { return self }
        // Old owner index -> new one (-1: gone); kept members keep their relative order.
        var remap = [Int32](repeating: -1, count: members.count)
        var added: [(position: UInt64, owner: Int32)] = []
        var old = 0
        for (index, member) in sorted.enumerated() {
            while old < members.count, members[old] < member { old += 1 }
            if old < members.count, members[old] == member {
                remap[old] = Int32(index)
                old += 1
            } else {
                Self.appendPoints(of: member, owner: Int32(index), virtualNodes: virtualNodes, to: &added)
            }
        }
        added.sort(by: Self.precedes)
        var points: [(position: UInt64, owner: Int32)] = []
        points.reserveCapacity(sorted.count * virtualNodes)
        var next = 0
        for index in positions.indices {
            let owner = remap[Int(owners[index])]
            guard owner >= 0 else { continue }
            let point = (position: positions[index], owner: owner)
            while next < added.count, Self.precedes(added[next], point) {
                points.append(added[next])
                next += 1
            }
            points.append(point)
        }
        points.append(contentsOf: added[next...])
        return HashRing(sorted: sorted, virtualNodes: virtualNodes, points: points)
    }

    private static func precedes(
        _ lhs: (position: UInt64, owner: Int32), _ rhs: (position: UInt64, owner: Int32)
    ) -> Bool {
        lhs.position != rhs.position ? lhs.position < rhs.position : lhs.owner < rhs.owner
    }

    /// Appends a member's points: at the hash of its name, a separator that cannot occur in a
    /// name, and the point's number (one buffer for all of them).
    private static func appendPoints(
        of member: NodeID, owner: Int32, virtualNodes: Int, to points: inout [(position: UInt64, owner: Int32)]
    ) {
        var bytes = Array(member.rawValue.utf8)
        bytes.append(0)
        let numberAt = bytes.count
        bytes.append(contentsOf: [0, 0, 0, 0])
        for point in 0..<virtualNodes {
            withUnsafeBytes(of: UInt32(point).littleEndian) { number in
                for offset in 0..<4 { bytes[numberAt + offset] = number[offset] }
            }
            points.append((StableHash.xxh64(bytes), owner))
        }
    }

    /// Where a key sits on the circle.
    public static func position(ofKey key: [UInt8]) -> UInt64 {
        key.withUnsafeBytes { position(ofKey: $0) }
    }

    /// Where a key sits on the circle.
    public static func position(ofKey key: UnsafeRawBufferPointer) -> UInt64 {
        StableHash.xxh64(key, seed: 0x6B65_7973)  // "keys": keys and points never share a hash input space
    }

    /// The first `count` distinct members going round from `key`'s position: its replicas, primary
    /// first. Fewer when the ring has fewer members.
    public func preferenceList(for key: [UInt8], count: Int) -> [NodeID] {
        preferenceList(forPosition: Self.position(ofKey: key), count: count)
    }

    /// The first `count` distinct members going round from `position`.
    public func preferenceList(forPosition position: UInt64, count: Int) -> [NodeID] {
        guard !positions.isEmpty, count > 0 else { return [] }
        if members.count == 1 { return members }
        let wanted = min(count, members.count)
        var result: [NodeID] = []
        result.reserveCapacity(wanted)
        var owners: [Int32] = []
        owners.reserveCapacity(wanted)
        var index = firstPoint(atOrAfter: position)
        while result.count < wanted {
            let owner = self.owners[index]
            // At most `replicationFactor` (a handful) members are taken: a linear check beats a set.
            if !owners.contains(owner) {
                owners.append(owner)
                result.append(members[Int(owner)])
            }
            index += 1
            if index == positions.count { index = 0 }
        }
        return result
    }

    /// The ring's identity: a hash of its members' names (the same on every node that sees the same
    /// members, different after any change), computed once: every answer carries it.
    public let version: UInt64

    /// The share of all key positions each member is first owner of, by member (sums to 1).
    public var primaryShares: [NodeID: Double] {
        guard !positions.isEmpty else { return [:] }
        var shares = [Double](repeating: 0, count: members.count)
        // A point owns the arc from the previous point (exclusive) to itself (inclusive).
        for index in positions.indices {
            let previous = index == 0 ? positions[positions.count - 1] : positions[index - 1]
            let arc = positions[index] &- previous
            shares[Int(owners[index])] += Double(arc) / 18_446_744_073_709_551_616.0
        }
        if positions.count == 1 { shares[Int(owners[0])] = 1 }
        return Dictionary(uniqueKeysWithValues: zip(members, shares))
    }

    /// The member that owns `key` (the head of its preference list).
    public func owner(of key: [UInt8]) -> NodeID? {
        guard !positions.isEmpty else { return nil }
        return members[Int(owners[firstPoint(atOrAfter: Self.position(ofKey: key))])]
    }

    /// The index of the first point at or after `position`, wrapping to 0 past the last.
    private func firstPoint(atOrAfter position: UInt64) -> Int {
        var low = 0
        var high = positions.count
        while low < high {
            let middle = (low + high) / 2
            if positions[middle] < position { low = middle + 1 } else { high = middle }
        }
        return low == positions.count ? 0 : low
    }
}
