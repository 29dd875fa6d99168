/// What a client's token lets it do (`TOKENS_FILE`), over HTTP and the Redis protocol alike. Each
/// role includes the ones before it.
public enum ClientRole: Int, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    /// `GET /get`, `/stats`, `/cluster`, `/cluster/stats`, `/metrics` (when protected).
    case read = 1
    /// `PUT /put`, `DELETE /delete` as well.
    case write = 2
    /// Cluster operations as well: leave, forget, plan.
    case admin = 3

    public static func < (lhs: ClientRole, rhs: ClientRole) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .admin: "admin"
        }
    }

    /// The role named `name` (`read`, `write`, `admin`).
    public init?(name: String) {
        guard let role = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = role
    }
}
