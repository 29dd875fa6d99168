/// What a change of members would move, computed before anything is done (Riak's plan/commit; no
/// cache of the anchors offers it).
///
/// Both rings, before and after, are walked over the union of their points: every arc between two
/// consecutive points has one replica set in each ring, so the shares below are exact fractions of
/// the key space, not samples.
public struct RingPlan: Sendable, Equatable {
    /// One member's part in the change.
    public struct Member: Sendable, Equatable {
        public var id: NodeID
        /// Share of the key space it replicates now, and after the change (0 for a member removed
        /// or not yet added).
        public var before: Double
        public var after: Double
        /// Share of the key space it would receive copies of (ranges it replicates after and not now).
        public var receives: Double
        /// Share it would hand off (ranges it replicates now and not after).
        public var givesUp: Double
    }

    /// Every member before or after, in name order.
    public var members: [Member]
    /// Share of the key space whose replica set changes.
    public var moved: Double

    /// The plan for going from `current` key owners to `current` plus `adding` minus `removing`,
    /// with `replicationFactor` replicas per key.
    public static func compute(
        current: [NodeID], adding: [NodeID], removing: [NodeID], replicationFactor: Int,
        virtualNodes: Int = HashRing.defaultVirtualNodes
    ) -> RingPlan {
        let before = HashRing(members: current, virtualNodes: virtualNodes)
        let afterMembers = Set(current).union(adding).subtracting(removing)
        let after = HashRing(members: afterMembers, virtualNodes: virtualNodes)
        let everyone = Set(current).union(adding).sorted()
        var shares: [NodeID: Member] = [:]
        for id in everyone { shares[id] = Member(id: id, before: 0, after: 0, receives: 0, givesUp: 0) }
        let points = (before.pointPositions + after.pointPositions).sorted()
        var moved = 0.0
        guard !points.isEmpty else { return RingPlan(members: everyone.map { shares[$0]! }, moved: 0) }
        for index in points.indices {
            let previous = index == 0 ? points[points.count - 1] : points[index - 1]
            let arc = points.count == 1 ? 1.0 : Double(points[index] &- previous) / 18_446_744_073_709_551_616.0
            guard arc > 0 else { continue }
            let old = Set(before.preferenceList(forPosition: points[index], count: replicationFactor))
            let new = Set(after.preferenceList(forPosition: points[index], count: replicationFactor))
            for id in old { shares[id]?.before += arc }
            for id in new { shares[id]?.after += arc }
            for id in new.subtracting(old) { shares[id]?.receives += arc }
            for id in old.subtracting(new) { shares[id]?.givesUp += arc }
            if old != new { moved += arc }
        }
        return RingPlan(members: everyone.map { shares[$0]! }, moved: moved)
    }
}
