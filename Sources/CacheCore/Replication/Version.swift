/// The version of one write: it orders every write to a key across the cluster, and the greatest
/// version wins (last writer wins).
///
/// `wall` and `logical` are a hybrid logical clock reading of the coordinator that made the write;
/// `node` is that coordinator, which breaks the tie between two writes made at the same reading.
public struct Version: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Physical part: nanoseconds since the epoch, never behind any version the clock has seen.
    public var wall: Int64
    /// Logical part: counts writes within one `wall` value.
    public var logical: UInt32
    /// The node whose clock made the version.
    public var node: NodeID

    /// Creates a version.
    public init(wall: Int64, logical: UInt32, node: NodeID) {
        self.wall = wall
        self.logical = logical
        self.node = node
    }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        if lhs.wall != rhs.wall { return lhs.wall < rhs.wall }
        if lhs.logical != rhs.logical { return lhs.logical < rhs.logical }
        return lhs.node < rhs.node
    }

    public var description: String { "\(wall).\(logical)@\(node)" }
}

/// A hybrid logical clock (Kulkarni et al.): close to physical time, yet never behind a version it
/// has seen, so a write made after seeing another gets a greater version even when this node's
/// physical clock is behind the other's.
public struct HybridClock: Sendable {
    /// The node whose versions this clock makes.
    public let node: NodeID
    private var wall: Int64 = .min
    private var logical: UInt32 = 0

    /// A clock that has seen nothing yet.
    public init(node: NodeID) {
        self.node = node
    }

    /// A new version, greater than every version made or observed so far.
    public mutating func next(physical: Instant) -> Version {
        if physical.nanosecondsSinceEpoch > wall {
            wall = physical.nanosecondsSinceEpoch
            logical = 0
        } else if logical == .max {
            // `observe` never takes a reading far ahead of the physical clock, so the wall part
            // stays centuries from its top; saturating keeps a broken clock from trapping.
            wall = wall < .max ? wall + 1 : wall
            logical = 0
        } else {
            logical += 1
        }
        return Version(wall: wall, logical: logical, node: node)
    }

    /// Takes note of a version made elsewhere: later versions from this clock will be greater. A
    /// version more than `maximumOffset` ahead of `now` (this node's physical clock) is not taken:
    /// it comes from a clock that is wrong, or from a forger, and adopting it would make every later
    /// version of this node wrong too.
    @discardableResult
    public mutating func observe(_ version: Version, now: Instant, maximumOffset: Duration) -> Bool {
        guard Self.admits(version, now: now, maximumOffset: maximumOffset) else { return false }
        if version.wall > wall || (version.wall == wall && version.logical > logical) {
            wall = version.wall
            logical = version.logical
        }
        return true
    }

    /// Whether `version` is at most `maximumOffset` ahead of `now`.
    public static func admits(_ version: Version, now: Instant, maximumOffset: Duration) -> Bool {
        version.wall <= now.advanced(by: maximumOffset).nanosecondsSinceEpoch
    }
}

/// How many replicas must answer a request before it completes.
public enum ConsistencyLevel: String, Equatable, Sendable, CaseIterable, CustomStringConvertible {
    /// One replica.
    case one
    /// A majority of the replicas: `N / 2 + 1`.
    case quorum
    /// Every replica.
    case all

    /// Replicas required out of `replicas`.
    public func required(of replicas: Int) -> Int {
        switch self {
        case .one: min(1, replicas)
        case .quorum: replicas / 2 + 1
        case .all: replicas
        }
    }

    public var description: String { rawValue }
}
