import CacheCore

/// The cluster as one node sees it: `GET /cluster`.
public struct ClusterStatus: Sendable, Decodable, Equatable {
    /// One member.
    public struct Member: Sendable, Decodable, Equatable {
        public var id: String
        /// Where peers reach it.
        public var address: String
        /// Where clients reach it (HTTP).
        public var clientAddress: String
        /// `alive`, `suspect`, `dead` or `left`.
        public var status: String
        public var incarnation: Int
        /// The fraction of keys it is first owner of.
        public var ringShare: Double
        /// Seconds since the answering node last heard from it (nil: never).
        public var lastContactSeconds: Double?
    }

    /// A departure in progress on the answering node.
    public struct Leaving: Sendable, Decodable, Equatable {
        public var keysToHandOff: Int
    }

    /// The node that answered.
    public var nodeID: String
    /// The ring's identity: equal on nodes that agree on the key owners.
    public var ringVersion: String
    public var ringMembers: Int
    /// Points per member on the ring (absent from nodes before this field: the default).
    public var virtualNodes: Int?
    public var replicationFactor: Int
    public var effectiveReplicationFactor: Int
    /// The answering node's default level.
    public var consistency: String
    public var members: [Member]
    /// Writes held for members that were down, waiting to be handed to them.
    public var handoffBacklog: Int
    public var tombstones: Int
    public var rebalancing: Bool
    public var leaving: Leaving?
    public var seeds: [String]

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", ringVersion = "ring_version", ringMembers = "ring_members"
        case virtualNodes = "virtual_nodes", replicationFactor = "replication_factor"
        case effectiveReplicationFactor = "effective_replication_factor", consistency, members
        case handoffBacklog = "handoff_backlog", tombstones, rebalancing, leaving, seeds
    }
}

extension ClusterStatus.Member {
    enum CodingKeys: String, CodingKey {
        case id, address, clientAddress = "client_address", status, incarnation, ringShare = "ring_share"
        case lastContactSeconds = "last_contact_seconds"
    }
}

extension ClusterStatus.Leaving {
    enum CodingKeys: String, CodingKey {
        case keysToHandOff = "keys_to_hand_off"
    }
}

/// Where keys live, computed from a `ClusterStatus` with the same ring code the nodes run.
struct Topology: Sendable {
    let status: ClusterStatus
    let ring: HashRing
    /// Each member's HTTP address and status, by id.
    let members: [String: (address: NodeAddress, status: String)]
    /// Every member that may coordinate (not left), alive ones first.
    let coordinators: [NodeAddress]

    init(_ status: ClusterStatus) {
        self.status = status
        var members: [String: (address: NodeAddress, status: String)] = [:]
        for member in status.members {
            if let address = NodeAddress(member.clientAddress) { members[member.id] = (address, member.status) }
        }
        self.members = members
        // Dead members keep their share of the ring until they leave or are forgotten: so do we.
        let owners = status.members.filter { $0.status != "left" }.map { NodeID($0.id) }
        ring = HashRing(members: owners, virtualNodes: status.virtualNodes ?? HashRing.defaultVirtualNodes)
        let usable = status.members.filter { $0.status != "left" }.sorted { $0.id < $1.id }
        coordinators =
            (usable.filter { $0.status == "alive" } + usable.filter { $0.status != "alive" })
            .compactMap { NodeAddress($0.clientAddress) }
    }

    var version: String { status.ringVersion }

    /// The key's replicas, first owner first, with whether each is seen alive.
    func owners(of key: String) -> [(address: NodeAddress, alive: Bool)] {
        let list = ring.preferenceList(for: Array(key.utf8), count: status.replicationFactor)
        return list.compactMap { id in
            members[id.rawValue].map { ($0.address, $0.status == "alive") }
        }
    }
}
